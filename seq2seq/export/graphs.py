"""The graphs an exported model consists of: for a text model the encoder and one
decoder step; for a forecast model the encoder and the decoder (at the end of this file).

A decoding loop does not trace (its length depends on the data), so the search stays on
the host (:mod:`seq2seq.search`) and only two functions are exported, both with the
decoder state as explicit, named tensors (fairseq's split of model and search):

- ``encoder``: ``src (batch, src_len) int64``, ``src_lengths (batch,) int64`` ->
  the decoder's start state ``h`` (and ``c`` for an LSTM) and the source memory the steps
  read (:class:`~seq2seq.modules.decoders.SourceMemory`: ``mask``, ``states``, ``keys``,
  ``memory_proj``, ``context``, whichever the decoder uses); for a Transformer decoder
  ``mask`` and every layer's cross-attention ``cross_k``, ``cross_v``
  ``(layers, batch, heads, src_len, d_k)`` (:class:`~seq2seq.modules.transformer.TransformerMemory`).
- ``decoder_step``: ``prev (rows,) int64``, the per-row state (``h``, ``c``, ``feed``,
  ``coverage``; for a Transformer the key/value cache ``self_k``, ``self_v``
  ``(layers, rows, heads, t, d_k)``, which a step returns one position longer) and the
  per-source memory -> ``logits (rows, V)``, the next per-row
  state (``h_out``, ...) and ``attention (rows, src_len)``.  Rows are grouped by source,
  ``rows = sources x beam`` consecutive rows per source, as
  :class:`~seq2seq.modules.decoders.DecoderState` keeps them; the step reads the beam
  size from the shapes, so one graph serves greedy search, beam search and sampling.

The step is the model's own :meth:`~seq2seq.modules.decoders.RNNDecoder.step` (with its
inference input table, ``W e(y) + b`` of every target token, a constant of the graph) or
:meth:`~seq2seq.modules.transformer.TransformerDecoder.step`.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from seq2seq.errors import Seq2SeqError
from seq2seq.forecast.model import ForecastModel
from seq2seq.modules.decoders import DecoderState, SourceMemory
from seq2seq.modules.encoders import EncoderOutput
from seq2seq.modules.transformer import TransformerDecoder, TransformerMemory, TransformerState


def unsupported(model: nn.Module) -> Optional[str]:
    """Why ``model`` cannot be exported yet, or None when it can.

    Exportable: RNN and Transformer encoders (any cell, layers, bidirectional, reversed
    source); RNN decoders with any attention, input feeding, coverage, the context at
    every step, Cho's maxout readout and tied embeddings; Transformer decoders (the step
    with its key/value cache); forecast models (every cell and attention, the regression
    or quantile head).  Not yet: copy attention (its extended vocabulary changes size per
    batch) and variational models (their prior sampling needs the latent on the host).
    """
    if isinstance(model, ForecastModel) or isinstance(model.decoder, TransformerDecoder):
        return None
    if model.decoder.copy:
        return "copy attention cannot be exported to ONNX yet (its extended vocabulary changes size per batch)"
    if getattr(model, "latent", None) is not None:
        return "a variational model (model.latent_size) cannot be exported to ONNX yet"
    return None


def state_names(decoder: nn.Module) -> tuple[list[str], list[str]]:
    """The decoder's per-row state names and the source memory fields its steps read."""
    if isinstance(decoder, TransformerDecoder):
        return ["self_k", "self_v"], ["mask", "cross_k", "cross_v"]
    rows = ["h", "c"] if isinstance(decoder.rnn, nn.LSTM) else ["h"]
    rows += (["feed"] if decoder.input_feeding else []) + (["coverage"] if decoder.coverage else [])
    source = []
    if decoder.attention is not None:
        source += ["mask", "keys", "memory_proj"] + (["states"] if decoder.style == "bahdanau" else [])
    if decoder.context_every_step:
        source.append("context")
    return rows, source


class EncoderGraph(nn.Module):
    """``model.encode`` with tensors in and out (see the module docstring).

    Args:
        model: an :class:`~seq2seq.models.encoder_decoder.EncoderDecoder` in eval mode.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.rows, self.source = state_names(model.decoder)
        hidden = [n for n in ("h", "c") if n in self.rows]
        # The encoder states are always an output: a graph that used only the final
        # states of a packed RNN does not export (the exporter drops the unpacking).
        self.output_names = hidden + self.source + ([] if "states" in self.source else ["states"])

    def forward(self, src: Tensor, src_lengths: Tensor) -> tuple[Tensor, ...]:
        """src: (batch, src_len) ids; src_lengths: (batch,) -> the tensors of ``output_names``:
        h, c: (layers, batch, H); mask: (batch, src_len) bool; keys: (batch, src_len, K);
        memory_proj: (batch, src_len, H); states: (batch, src_len, M) (always, zero on
        padding); context: (batch, M); cross_k, cross_v: (layers, batch, heads, src_len, d_k)."""
        mask = torch.arange(src.size(1), device=src.device).unsqueeze(0) < src_lengths.unsqueeze(1)
        encoded, state = self.model.encode(src, src_lengths, mask)
        if isinstance(state, TransformerState):
            hidden, memory = [], {"mask": state.source.mask, "cross_k": state.source.keys,
                                  "cross_v": state.source.values}
        else:
            hidden = list(state.hidden) if isinstance(state.hidden, tuple) else [state.hidden]
            memory = {name: getattr(state.source, name) for name in self.source}
        return (*hidden, *(memory.get(name, encoded.outputs) for name in self.output_names[len(hidden):]))


class StepGraph(nn.Module):
    """``decoder.step`` with tensors in and out (see the module docstring).

    Args:
        decoder: an :class:`~seq2seq.modules.decoders.RNNDecoder` or
            :class:`~seq2seq.modules.transformer.TransformerDecoder` in eval mode.
    """

    def __init__(self, decoder: nn.Module):
        super().__init__()
        self.decoder = decoder
        self.rows, self.source = state_names(decoder)
        self.input_names = ["prev"] + self.rows + self.source
        self.output_names = ["logits"] + [f"{n}_out" for n in self.rows] + (
            ["attention"] if getattr(decoder, "attention", True) is not None else [])

    def forward(self, prev: Tensor, *tensors: Tensor) -> tuple[Tensor, ...]:
        """prev: (rows,) previous target ids; then the tensors of ``input_names[1:]``.
        Returns logits (rows, V), the next per-row state and attention (rows, src_len)."""
        d = self.decoder
        named = dict(zip(self.input_names[1:], tensors))
        if isinstance(d, TransformerDecoder):
            memory = TransformerMemory(named["mask"], named["cross_k"], named["cross_v"])
            state = TransformerState.from_tensors(named["self_k"], named["self_v"], memory)
            logits, state, attention = d.step(prev, state)
            return logits, state.keys, state.values, attention
        hidden = (named["h"], named["c"]) if "c" in named else named["h"]
        mask = named.get("mask")
        if mask is None:                              # no attention: the step reads no source tensor
            mask = torch.ones(hidden[0].size(1) if isinstance(hidden, tuple) else hidden.size(1), 1,
                              dtype=torch.bool)
        source = SourceMemory(mask, named.get("states"), named.get("keys"), named.get("memory_proj"),
                              named.get("context"))
        cache = d._step_cache()
        if d.feed_previous_output and not d.context_every_step:
            cache = cache._replace(input_table=cache.cell.input_gates(d.embedding.weight))   # (V, G)
        state = DecoderState(hidden, source, named.get("feed"), named.get("coverage"), 1, cache)
        logits, state, attention = d.step(prev, state)
        new = list(state.hidden) if isinstance(state.hidden, tuple) else [state.hidden]
        new += ([state.feed] if d.input_feeding else []) + ([state.coverage] if d.coverage else [])
        return (logits, *new, *([attention] if attention is not None else []))


def check_exportable(model: nn.Module) -> None:
    """Raises:
        Seq2SeqError: the model cannot be exported yet (one line saying why)."""
    why = unsupported(model)
    if why is not None:
        raise Seq2SeqError(f"cannot export: {why}")


class ForecastEncoderGraph(nn.Module):
    """:meth:`~seq2seq.forecast.model.ForecastModel.encode` with tensors in and out.

    ``x (B, L, V + C)`` the normalised past values and calendar features -> ``h`` (and
    ``c``) ``(layers, B, H)``, ``states (B, L, M)`` and, with attention, ``keys (B, L, K)``.
    Window normalisation and the rescaling of the forecast stay on the host (cheap and
    exact), as does the loop over the horizon.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        lstm = isinstance(model.decoder.rnn, nn.LSTM)
        self.output_names = (["h", "c"] if lstm else ["h"]) + ["states"] + (
            ["keys"] if model.decoder.attention is not None else [])

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        hidden, encoded, keys = self.model.encode(x)
        hidden = list(hidden) if isinstance(hidden, tuple) else [hidden]
        return (*hidden, encoded.outputs, *([keys] if keys is not None else []))


class ForecastDecoderGraph(nn.Module):
    """:class:`~seq2seq.forecast.model.ForecastDecoder` over ``steps`` positions (one per
    call while forecasting autoregressively, the whole horizon when nothing is fed back).

    ``inputs (B, steps, F_in)``, ``h`` (``c``), ``states``, ``keys`` -> ``outputs
    (B, steps, V x Q)`` in normalised units and ``h_out`` (``c_out``).
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.decoder = model.decoder
        encoder_outputs = ForecastEncoderGraph(model).output_names
        self.input_names = ["inputs"] + encoder_outputs
        hidden = [n for n in encoder_outputs if n in ("h", "c")]
        self.output_names = ["outputs"] + [f"{n}_out" for n in hidden]

    def forward(self, inputs: Tensor, *tensors: Tensor) -> tuple[Tensor, ...]:
        named = dict(zip(self.input_names[1:], tensors))
        hidden = (named["h"], named["c"]) if "c" in named else named["h"]
        states = named["states"]
        encoded = EncoderOutput(states, None, torch.ones(states.shape[:2], dtype=torch.bool))
        out, hidden = self.decoder(inputs, hidden, encoded, named.get("keys"))
        return (out, *(hidden if isinstance(hidden, tuple) else (hidden,)))
