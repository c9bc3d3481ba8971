"""Output heads of the RNN decoder: from the attentional state o_t to the scores of y_t.

Each head is an ``nn.Linear`` with the equation around it, so its parameters keep
the decoder's key names (``output``, ``readout``, ``copy_gate``).  Shapes are
(..., size): one step (rows, size) or a whole target (batch, tgt_len, size).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class Generator(nn.Linear):
    """The output layer, logits ``W_out o_t + b`` (Luong et al. 2015, eq. 6 before its
    softmax): (..., H) -> (..., V).  With tied embeddings the decoder uses the target
    embedding matrix as W_out instead and keeps only the bias."""


class MaxoutReadout(nn.Linear):
    """Cho et al. 2014's readout (appendix A.1.2) when the context is fed at every step:
    ``o'_t = max-pool_2(O_h o_t + O_y e(y_{t-1}) + O_c c)``, maxout over pairs of units.

    Args:
        hidden_size: H; embedding_size: E; context_size: M, the size of c.
    """

    def __init__(self, hidden_size: int, embedding_size: int, context_size: int):
        super().__init__(hidden_size + embedding_size + context_size, 2 * hidden_size)

    def forward(self, o: Tensor, emb: Tensor, context: Tensor) -> Tensor:
        """o: (..., H); emb: (..., E) e(y_{t-1}); context: (..., M) c -> (..., H)."""
        pre = super().forward(torch.cat([o, emb, context], dim=-1))
        return pre.unflatten(-1, (-1, 2)).max(-1).values


class PointerGenerator(nn.Linear):
    """Copy attention (See et al. 2017, eqs. 8-9): ``P(w) = p_gen P_vocab(w) +
    (1 - p_gen) sum_{j: x_j = w} a_tj`` over the target vocabulary extended by the
    sentence's unknown source words, with ``p_gen = sigmoid(w_c^T c_t + w_o^T o_t +
    w_x^T e(y_{t-1}) + b)`` (See uses the decoder state s_t where this uses the
    attentional state o_t).  The linear part is the gate.

    Args:
        memory_size: M; hidden_size: H; embedding_size: E; vocab_size: V.
        never: ids that are never output (padding, ``<bos>``).
    """

    def __init__(self, memory_size: int, hidden_size: int, embedding_size: int, vocab_size: int,
                 never: tuple[int, ...]):
        super().__init__(memory_size + hidden_size + embedding_size, 1)
        self.vocab_size = vocab_size
        specials = torch.zeros(vocab_size, dtype=torch.bool)
        specials[list(never)] = True
        self.register_buffer("specials", specials, persistent=False)

    def forward(self, logits: Tensor, context: Tensor, o: Tensor, emb: Tensor, weights: Tensor, src_ext: Tensor,
                ext_size: int) -> Tensor:
        """Log-probabilities over the extended vocabulary.

        Args:
            logits: (..., V) the generator's scores; context: (..., M) c_t; o: (..., H);
            emb: (..., E) e(y_{t-1}); weights: (..., S) attention a_t;
            src_ext: (..., S) the source in the extended vocabulary; ext_size: its size.

        Returns:
            (..., ext_size) log P(w), float32; -inf for specials and for extended ids
            not in this row's source.
        """
        p_vocab = torch.softmax(logits.float().masked_fill(self.specials, float("-inf")), dim=-1)
        p_gen = torch.sigmoid(super().forward(torch.cat([context, o, emb], dim=-1)).float())   # (..., 1)
        pad = (0, ext_size - self.vocab_size)
        dist = F.pad(p_gen * p_vocab, pad).scatter_add(-1, src_ext, (1 - p_gen) * weights.float())
        # Zero-probability entries (specials, other sentences' unknown words) get -inf
        # after the log: clamping first keeps their gradient at 0 instead of nan.
        present = torch.zeros_like(dist, dtype=torch.bool).scatter_(-1, src_ext, True)
        extended = torch.arange(ext_size, device=dist.device) >= self.vocab_size
        impossible = F.pad(self.specials, pad) | (extended & ~present)
        return dist.clamp_min(1e-30).log().masked_fill(impossible, float("-inf"))
