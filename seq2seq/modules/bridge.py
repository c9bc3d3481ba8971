"""The bridge: how the encoder's final state becomes the decoder's initial state,
and the fixed-size source context c that it and the decoder may read.

Context (:class:`EncoderContext`, Cho et al. 2014 eq. 2: c = q({h_1, ..., h_T})):

- ``last``: q = the final states (per layer, directions concatenated);
- ``mean`` / ``max``: a learned transform of all top-layer states,
  ``c = tanh(W pool_j(h_j) + b)``, pooling over real (unpadded) positions only.

Bridge:

- ``none``: zeros (the decoder sees the source only through attention).
- ``last``: the encoder's final state per layer, directions concatenated (Sutskever
  et al. 2014 pass the final state on; Cho et al. 2014 start from the summary c).
- ``projection``: ``tanh(W s + b)`` from all encoder layers' final states to every
  decoder layer (Bahdanau et al. 2015, appendix A.2.2 initialise s_0 this way, from
  the backward annotation; here from the concatenated final states).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from seq2seq.errors import Seq2SeqError
from seq2seq.modules.rnn import RNNState


class EncoderContext(nn.Module):
    """The source summary c, and the state the bridge starts from.

    Args:
        kind: ``last``, ``mean`` or ``max``.
        size: encoder output size M (directions concatenated).
    """

    def __init__(self, kind: str, size: int):
        super().__init__()
        self.kind = kind
        self.proj = nn.Linear(size, size) if kind != "last" else None

    def forward(self, outputs: Tensor, final: RNNState, mask: Tensor) -> tuple[Tensor, RNNState]:
        """Args:
            outputs: (batch, src_len, M) top-layer states, zero on padding.
            final: (layers, batch, M) or (h, c): the final states.
            mask: (batch, src_len) True on real tokens.

        Returns:
            c: (batch, M) the context; summary: what the bridge maps to the decoder's
            initial state: ``final`` for ``last``, else c as one layer (1, batch, M).
        """
        if self.kind == "last":
            h = final[0] if isinstance(final, tuple) else final
            return h[-1], final
        if self.kind == "mean":
            m = mask.unsqueeze(-1).to(outputs.dtype)
            pooled = (outputs * m).sum(1) / m.sum(1).clamp_min(1.0)
        else:
            pooled = outputs.masked_fill(~mask.unsqueeze(-1), float("-inf")).max(1).values
        c = torch.tanh(self.proj(pooled))
        return c, c.unsqueeze(0)


class Bridge(nn.Module):
    """Map encoder final states to decoder initial states.

    Args:
        kind: ``none``, ``last`` or ``projection``.
        enc_cell: the encoder's cell type.
        dec_cell: the decoder's cell type (an LSTM decoder fed by a GRU encoder gets
            c_0 = 0 with ``last``; a projection maps h to both h_0 and c_0).
        enc_size: encoder state size per layer (directions concatenated).
        enc_layers: encoder layers.
        dec_size: decoder hidden size.
        dec_layers: decoder layers.

    Raises:
        Seq2SeqError: ``last`` with sizes or layer counts that do not match.
    """

    def __init__(self, kind: str, enc_cell: str, dec_cell: str, enc_size: int, enc_layers: int,
                 dec_size: int, dec_layers: int):
        super().__init__()
        self.kind, self.dec_cell = kind, dec_cell
        self.dec_size, self.dec_layers = dec_size, dec_layers
        self.enc_is_lstm = enc_cell == "lstm"
        if kind == "last" and (enc_size != dec_size or enc_layers != dec_layers):
            raise Seq2SeqError(
                f"model.bridge 'last' needs the encoder state ({enc_layers} layers x {enc_size}, directions "
                f"concatenated) to match the decoder ({dec_layers} layers x {dec_size}); use bridge: projection")
        if kind == "projection":
            self.proj_h = nn.Linear(enc_layers * enc_size, dec_layers * dec_size)
            if dec_cell == "lstm":
                self.proj_c = nn.Linear(enc_layers * enc_size, dec_layers * dec_size)

    def _project(self, layer: nn.Linear, s: Tensor) -> Tensor:
        # (layers, B, size) -> (B, layers*size) -> (dec_layers, B, dec_size)
        batch = s.size(1)
        flat = s.transpose(0, 1).reshape(batch, -1)
        out = torch.tanh(layer(flat))
        return out.view(batch, self.dec_layers, self.dec_size).transpose(0, 1).contiguous()

    def forward(self, final: RNNState, batch_size: int) -> RNNState:
        """Args:
            final: encoder final state, (enc_layers, batch, enc_size) or (h, c).
            batch_size: B.

        Returns:
            Decoder initial state: (dec_layers, batch, dec_size), or (h, c) for LSTM.
        """
        h_enc = final[0] if isinstance(final, tuple) else final
        if self.kind == "none":
            h = h_enc.new_zeros(self.dec_layers, batch_size, self.dec_size)
            return (h, torch.zeros_like(h)) if self.dec_cell == "lstm" else h
        if self.kind == "last":
            if self.dec_cell != "lstm":
                return h_enc
            c = final[1] if isinstance(final, tuple) else torch.zeros_like(h_enc)
            return (h_enc, c)
        h = self._project(self.proj_h, h_enc)
        if self.dec_cell != "lstm":
            return h
        c_src = final[1] if isinstance(final, tuple) else h_enc
        return (h, self._project(self.proj_c, c_src))
