"""Recurrent encoder: embedding + (bi)RNN over the source (Cho et al. 2014, sec. 2;
Bahdanau et al. 2015, sec. 3.2 for the bidirectional annotations)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seq2seq.modules.dropout import Dropout
from seq2seq.modules.rnn import RNNState, make_rnn, run_rnn


@dataclass
class EncoderOutput:
    """What the decoder may use of the source.

    Attributes:
        outputs: (batch, src_len, output_size) top-layer states h_j, zero on padding.
        final: last state per layer, directions concatenated:
            (layers, batch, output_size), or a pair (h, c) of those for LSTM.
        mask: (batch, src_len) True on real source tokens.
    """

    outputs: Tensor
    final: RNNState
    mask: Tensor


class RNNEncoder(nn.Module):
    """Embedding + multi-layer, optionally bidirectional RNN/GRU/LSTM.

    Sequences are packed, so padding never changes a result: a sentence encodes
    the same alone or in a padded batch.  A batch without padding (all sources
    of one length, which the training sampler's order makes common) skips
    packing and runs the RNN in one fused call.

    Args:
        vocab_size: source vocabulary size.
        cell: ``rnn``, ``gru`` or ``lstm``.
        embedding_size: E.
        hidden_size: H per direction.
        layers: stacked layers (dropout between them).
        bidirectional: read left-to-right and right-to-left, concatenating (2H).
        dropout: on the embeddings and between layers.
        pad_id: padding id (its embedding is zero and never trained).
        embedding: a module to use in place of the token embedding, mapping
            ``src`` to (batch, src_len, embedding_size): e.g. ``nn.Linear(F, E)``
            over continuous inputs (batch, src_len, F) for forecasting.
    """

    def __init__(self, vocab_size: int, cell: str, embedding_size: int, hidden_size: int,
                 layers: int = 1, bidirectional: bool = True, dropout: float = 0.0,
                 pad_id: int = 0, embedding: nn.Module | None = None):
        super().__init__()
        self.embedding = embedding if embedding is not None else nn.Embedding(vocab_size, embedding_size,
                                                                              padding_idx=pad_id)
        self.dropout = Dropout(dropout)
        self.rnn = make_rnn(cell, embedding_size, hidden_size, layers, dropout, bidirectional)
        self.cell = cell
        self.layers = layers
        self.directions = 2 if bidirectional else 1
        self.output_size = hidden_size * self.directions

    def _merge_directions(self, h: Tensor) -> Tensor:
        # (layers * dirs, B, H) -> (layers, B, dirs * H): [forward; backward] per layer.
        if self.directions == 1:
            return h
        layers2, batch, hidden = h.shape
        return h.view(self.layers, 2, batch, hidden).transpose(1, 2).reshape(self.layers, batch, 2 * hidden)

    def forward(self, src: Tensor, src_lengths: Tensor, src_mask: Tensor) -> EncoderOutput:
        """Encode a padded batch.

        Args:
            src: (batch, src_len) source ids, or (batch, src_len, F) inputs of an
                ``embedding`` module given at construction.
            src_lengths: (batch,) true lengths (>= 1).
            src_mask: (batch, src_len) True on real tokens.

        Returns:
            :class:`EncoderOutput` with outputs (batch, src_len, dirs * H).
        """
        if src.dim() not in (2, 3) or src_lengths.shape != src.shape[:1]:
            raise ValueError(f"src must be (batch, src_len[, F]) with lengths (batch,); got {tuple(src.shape)}, "
                             f"{tuple(src_lengths.shape)}")
        emb = self.dropout(self.embedding(src))
        lengths = src_lengths.cpu()
        if bool((lengths == src.size(1)).all()):
            # No padding: one fused RNN call, several times faster than a packed one on CPU.
            out, final = run_rnn(self.rnn, emb)
        else:
            packed = pack_padded_sequence(emb, lengths, batch_first=True, enforce_sorted=False)
            out, final = run_rnn(self.rnn, packed)
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=src.size(1))
        if isinstance(final, tuple):
            final = (self._merge_directions(final[0]), self._merge_directions(final[1]))
        else:
            final = self._merge_directions(final)
        return EncoderOutput(self.dropout(out), final, src_mask)
