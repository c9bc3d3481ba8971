"""An exported directory as a model the search code decodes: the encoder and the
decoder-step graphs run in onnxruntime, everything else (greedy, beam search with its
penalties and n-best, sampling, ``<unk>`` replacement, attention output) is the same
host code that decodes a PyTorch model (:mod:`seq2seq.search`).

The state between steps is a :class:`~seq2seq.modules.decoders.DecoderState` (or, for
a Transformer decoder, a :class:`GraphTransformerState`) whose tensors came out of the
graphs, so beam search reorders it exactly as it reorders PyTorch's (per-row state
selected by row, source memory shared per source).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from torch import Tensor, nn

from seq2seq.forecast.model import ForecastModel
from seq2seq.models.encoder_decoder import Seq2SeqOutput
from seq2seq.modules.decoders import DecoderState, SourceMemory, reselect_sources
from seq2seq.modules.encoders import EncoderOutput
from seq2seq.modules.transformer import TransformerMemory


@dataclass(frozen=True)
class GraphTransformerState:
    """A Transformer decoder's state between steps of the exported graph: the cache as
    the graph's tensors (the PyTorch decoder keeps buffers instead,
    :class:`~seq2seq.modules.transformer.TransformerState`).

    Attributes:
        keys, values: (layers, rows, heads, t, d_k) the graph's ``self_k_out`` / ``self_v_out``.
        source: the rows' sources' cross-attention memory; beam: rows per source.
    """

    keys: Tensor
    values: Tensor
    source: TransformerMemory
    beam: int = 1

    def reorder(self, index: Tensor, beam: Optional[int] = None) -> "GraphTransformerState":
        """Select / reorder / repeat rows (see :meth:`DecoderState.reorder`)."""
        beam = self.beam if beam is None else beam
        return GraphTransformerState(self.keys.index_select(1, index), self.values.index_select(1, index),
                                     reselect_sources(self.source, index, self.beam, beam), beam)


def session(path: Path, threads: int):
    """An onnxruntime CPU session with ``threads`` intra-op threads, which sleep between
    runs instead of spinning: the search runs torch operations between two decoder
    steps, and spinning pool threads take the cores those need (``benchmarks/onnx_threads.py``,
    2 threads on 2 cores, fp32: greedy 822-936 words/s spinning, 2,276-3,477 not;
    beam 5 360-436 against 839-1,230)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class Graph:
    """One exported graph, called with named tensors and answering named tensors.

    Args:
        path: the ``.onnx`` file; threads: onnxruntime intra-op threads.

    Attributes:
        inputs, outputs: the graph's input and output names, in order.
    """

    def __init__(self, path: Path, threads: int):
        self.session = session(path, threads)
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.outputs = [o.name for o in self.session.get_outputs()]

    def __call__(self, tensors: dict[str, Optional[Tensor]]) -> dict[str, Tensor]:
        """Run on the graph's inputs taken from ``tensors`` (other entries are ignored);
        the outputs share memory with onnxruntime's arrays (no copy)."""
        feeds = {name: tensors[name].detach().contiguous().numpy() for name in self.inputs}
        return dict(zip(self.outputs, (torch.from_numpy(a) for a in self.session.run(None, feeds))))


class OnnxDecoder:
    """``step`` of the decoder-step graph (the interface of
    :meth:`~seq2seq.modules.decoders.RNNDecoder.step`).

    Args:
        graph: ``decoder_step.onnx``.
        hidden_size: H (for the zero ``feed`` of a start state).

    Attributes:
        rows: the per-row state names (``h``, ``c``, ``feed``, ``coverage``).
    """

    copy = False

    def __init__(self, graph: Graph, hidden_size: int):
        self.graph, self.hidden_size = graph, hidden_size
        self.rows = [n.removesuffix("_out") for n in graph.outputs if n.endswith("_out")]

    def step(self, prev_tokens: Tensor, state: DecoderState | GraphTransformerState
             ) -> tuple[Tensor, DecoderState | GraphTransformerState, Optional[Tensor]]:
        """One decoder step in onnxruntime.

        Args:
            prev_tokens: (rows,) y_{t-1}.
            state: the rows' state (rows = sources x beam, grouped by source).

        Returns:
            logits (rows, V), the new state, attention (rows, src_len) or None.
        """
        if isinstance(state, GraphTransformerState):
            out = self.graph({"prev": prev_tokens, "self_k": state.keys, "self_v": state.values,
                              "mask": state.source.mask, "cross_k": state.source.keys,
                              "cross_v": state.source.values})
            return out["logits"], GraphTransformerState(out["self_k_out"], out["self_v_out"], state.source,
                                                   state.beam), out["attention"]
        h, c = state.hidden if isinstance(state.hidden, tuple) else (state.hidden, None)
        tensors = {"prev": prev_tokens, "h": h, "c": c, "feed": state.feed, "coverage": state.coverage,
                   "mask": state.source.mask, "states": state.source.states, "keys": state.source.keys,
                   "memory_proj": state.source.memory_proj, "context": state.source.context}
        out = self.graph(tensors)
        hidden = (out["h_out"], out["c_out"]) if "c_out" in out else out["h_out"]
        new = DecoderState(hidden, state.source, out.get("feed_out"), out.get("coverage_out"), state.beam)
        return out["logits"], new, out.get("attention")


class OnnxEncoderDecoder(nn.Module):
    """The search's model interface (``encode``, ``decoder.step``, and a teacher-forced
    pass for the loss) over an exported model's two graphs.

    Args:
        encoder: path of ``encoder.onnx``; step: path of ``decoder_step.onnx``.
        hidden_size: the decoder's H (the zero ``feed`` of an input-feeding start state).
        threads: onnxruntime intra-op threads (default: torch's thread count).

    The search's own torch operations between two steps (top-k, reordering) run on one
    thread (``search_threads``, read by :func:`seq2seq.search.decode_batch`): with torch's
    threads idle, onnxruntime's have the cores (``benchmarks/onnx_threads.py``, 2 threads
    on 2 cores, three rounds, beam 5: fp32 1,069-1,496 words/s against 839-1,230 with torch
    at 2 threads, int8 1,135-1,554 against 1,025-1,354; faster in every round).
    """

    search_threads = 1

    def __init__(self, encoder: Path, step: Path, hidden_size: int, threads: Optional[int] = None):
        super().__init__()
        threads = threads or torch.get_num_threads()
        self.encoder_graph = Graph(Path(encoder), threads)
        self.decoder = OnnxDecoder(Graph(Path(step), threads), hidden_size)
        self.latent = None

    @classmethod
    def from_manifest(cls, folder: Path, manifest: dict, threads: Optional[int] = None) -> "OnnxEncoderDecoder":
        """The graphs of an exported directory (checked: :func:`~seq2seq.export.manifest.read_manifest`)."""
        graphs = manifest["graphs"]
        return cls(Path(folder) / graphs["encoder"]["file"], Path(folder) / graphs["decoder_step"]["file"],
                   manifest["config"]["model"]["decoder"]["hidden_size"], threads)

    def encode(self, src: Tensor, src_lengths: Tensor, src_mask: Tensor
               ) -> tuple[None, DecoderState | GraphTransformerState]:
        """The decoder's start state for a source batch.

        Args:
            src: (batch, src_len) ids; src_lengths: (batch,); src_mask: (batch, src_len).

        Returns:
            (None, the start state: hidden from the bridge, the source memory, zero
            ``feed`` / ``coverage`` where the decoder has them; for a Transformer decoder an
            empty key/value cache and the cross-attention keys and values).
        """
        out = self.encoder_graph({"src": src.long(), "src_lengths": src_lengths.long()})
        if "cross_k" in out:
            keys = out["cross_k"]                                 # (layers, batch, heads, S, d_k)
            empty = keys.new_zeros(*keys.shape[:3], 0, keys.size(-1))
            return None, GraphTransformerState(empty, empty, TransformerMemory(out["mask"], keys, out["cross_v"]))
        hidden = (out["h"], out["c"]) if "c" in out else out["h"]
        source = SourceMemory(out.get("mask", src_mask), out.get("states"), out.get("keys"), out.get("memory_proj"),
                              out.get("context"))
        batch = src.size(0)
        feed = torch.zeros(batch, self.decoder.hidden_size) if "feed" in self.decoder.rows else None
        coverage = torch.zeros(src_mask.shape) if "coverage" in self.decoder.rows else None
        return None, DecoderState(hidden, source, feed, coverage)

    def forward(self, batch, return_attention: bool = False) -> Seq2SeqOutput:
        """Teacher-forced scores, one graph step per target position (for the loss).

        Args:
            batch: src (batch, src_len), tgt_in (batch, tgt_len) starting with ``<bos>``.

        Returns:
            logits (batch, tgt_len, V) and, when asked, attention (batch, tgt_len, src_len).
        """
        _, state = self.encode(batch.src, batch.src_lengths, batch.src_mask)
        logits, attention = [], []
        for t in range(batch.tgt_in.size(1)):
            step_logits, state, weights = self.decoder.step(batch.tgt_in[:, t], state)
            logits.append(step_logits)
            attention.append(weights)
        weights = torch.stack(attention, 1) if return_attention and attention[0] is not None else None
        return Seq2SeqOutput(torch.stack(logits, 1), weights)


class OnnxForecastDecoder:
    """The forecast decoder graph, called as :class:`~seq2seq.forecast.model.ForecastDecoder` is."""

    def __init__(self, graph: Graph):
        self.graph = graph

    def __call__(self, inputs: Tensor, hidden, encoded, keys: Optional[Tensor]):
        """inputs: (B, steps, F_in) -> outputs (B, steps, V x Q) and the next state."""
        h, c = hidden if isinstance(hidden, tuple) else (hidden, None)
        out = self.graph({"inputs": inputs, "h": h, "c": c, "states": encoded.outputs, "keys": keys})
        return out["outputs"], ((out["h_out"], out["c_out"]) if "c_out" in out else out["h_out"])


class OnnxForecastModel(ForecastModel):
    """A forecast model whose encoder and decoder run in onnxruntime; window
    normalisation, the autoregressive loop over the horizon, the quantile sort and the
    rescaling are :class:`~seq2seq.forecast.model.ForecastModel`'s own host code.

    Args:
        encoder, decoder: paths of ``encoder.onnx`` and ``decoder.onnx``.
        cfg: the run's ``model`` section; values: V; calendar: C.
        threads: onnxruntime intra-op threads (default: torch's thread count).
    """

    def __init__(self, encoder: Path, decoder: Path, cfg, values: int, calendar: int,
                 threads: Optional[int] = None):
        nn.Module.__init__(self)                 # no torch layers: the graphs hold the weights
        threads = threads or torch.get_num_threads()
        self.values, self.calendar = values, calendar
        self.quantiles = list(cfg.quantiles) or [0.5]
        self.median = self.quantiles.index(0.5)
        self.window_normalization = cfg.window_normalization
        self.feed_previous = cfg.decoder.feed_previous_output
        self.encoder_graph = Graph(Path(encoder), threads)
        self.decoder = OnnxForecastDecoder(Graph(Path(decoder), threads))

    @classmethod
    def from_manifest(cls, folder: Path, manifest: dict, config, threads: Optional[int] = None
                      ) -> "OnnxForecastModel":
        """The graphs of an exported forecast directory (already checked)."""
        graphs, d = manifest["graphs"], config.data
        return cls(Path(folder) / graphs["encoder"]["file"], Path(folder) / graphs["decoder"]["file"],
                   config.model, len(d.value_columns), 2 * len(d.calendar), threads)

    def encode(self, x: Tensor):
        """x: (B, L, V + C) -> the decoder's start state, the encoder output, the keys."""
        out = self.encoder_graph({"x": x.float()})
        hidden = (out["h"], out["c"]) if "c" in out else out["h"]
        states = out["states"]
        return hidden, EncoderOutput(states, None, torch.ones(states.shape[:2], dtype=torch.bool)), out.get("keys")
