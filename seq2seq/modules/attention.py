"""Attention: score the encoder states h_j against a decoder query and average them.

All scorers share one interface: ``precompute(memory)`` once per batch (the keys,
so nothing source-side is recomputed at each decoder step), then
``forward(query, keys, memory, mask)`` for one or many query positions.

Score functions (Luong et al. 2015, eq. 8; Bahdanau et al. 2015, appendix A.1.2):

- ``dot``:     score(q, h_j) = q^T h_j
- ``general``: score(q, h_j) = q^T W_a h_j
- ``additive`` (``bahdanau``, ``luong_concat``): score(q, h_j) = v_a^T tanh(W_q q + U_a h_j).
  Luong's concat form ``v^T tanh(W[q; h_j])`` is the same function with W split into
  (W_q, U_a); the two names differ in where the decoder applies it (see decoders).

Weights are a softmax over the source with padded positions set to exactly 0.

Coverage (Tu et al. 2016; See et al. 2017, eq. 11): with ``coverage=True`` the
scores also read the coverage vector c_j (the attention already paid to h_j):
inside the additive energy, ``v_a^T tanh(W_q q + U_a h_j + w_c c_j)``, and as a
learned linear term ``+ w_c c_j`` for dot / general scores.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from seq2seq.errors import Seq2SeqError


class Attention(nn.Module):
    """Base class: masked softmax and the weighted sum of values."""

    def precompute(self, memory: Tensor) -> Tensor:
        """Args: memory: (batch, src_len, memory_size). Returns: keys (batch, src_len, K)."""
        raise NotImplementedError

    def score(self, query: Tensor, keys: Tensor, coverage: Tensor | None = None) -> Tensor:
        """Args: query (batch, q_len, query_size), keys (batch, src_len, K),
        coverage (batch, q_len, src_len) or None.
        Returns: scores (batch, q_len, src_len)."""
        raise NotImplementedError

    def probabilities(self, query: Tensor, keys: Tensor, mask: Tensor, coverage: Tensor | None = None) -> Tensor:
        """Attention weights a = softmax(score) over real source positions.

        Args:
            query: (batch, q_len, query_size); keys: (batch, src_len, K);
            mask: (batch, src_len) True on real source tokens;
            coverage: (batch, q_len, src_len) past attention per position, or None.

        Returns:
            (batch, q_len, src_len): rows sum to 1, exactly 0 on padding.
        """
        scores = self.score(query, keys, coverage).masked_fill(~mask.unsqueeze(1), float("-inf"))
        return torch.softmax(scores, dim=-1)

    def _linear_coverage(self, scores: Tensor, coverage: Tensor | None) -> Tensor:
        """dot / general: scores + w_c * coverage."""
        return scores if coverage is None else scores + self.coverage_weight * coverage

    def forward(self, query: Tensor, keys: Tensor, memory: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Attend for each query position.

        Args:
            query: (batch, q_len, query_size) decoder states.
            keys: (batch, src_len, K) from :meth:`precompute`.
            memory: (batch, src_len, memory_size) encoder states h_j (the values).
            mask: (batch, src_len) True on real source tokens.

        Returns:
            context: (batch, q_len, memory_size), c = sum_j a_j h_j.
            weights: (batch, q_len, src_len), rows sum to 1, exactly 0 on padding.
        """
        weights = self.probabilities(query, keys, mask)
        return torch.bmm(weights, memory), weights


class DotAttention(Attention):
    """Luong dot: q^T h_j.  Needs query_size == memory_size."""

    def __init__(self, query_size: int, memory_size: int, coverage: bool = False):
        super().__init__()
        self.coverage_weight = nn.Parameter(torch.zeros(())) if coverage else None
        if query_size != memory_size:
            raise Seq2SeqError(
                f"luong_dot attention needs decoder.hidden_size ({query_size}) == encoder output size "
                f"({memory_size}, directions concatenated); use luong_general or luong_concat")

    def precompute(self, memory: Tensor) -> Tensor:
        return memory

    def score(self, query: Tensor, keys: Tensor, coverage: Tensor | None = None) -> Tensor:
        return self._linear_coverage(torch.bmm(query, keys.transpose(1, 2)), coverage)


class GeneralAttention(Attention):
    """Luong general: q^T W_a h_j, with W_a h_j computed once per batch."""

    def __init__(self, query_size: int, memory_size: int, coverage: bool = False):
        super().__init__()
        self.key_layer = nn.Linear(memory_size, query_size, bias=False)
        self.coverage_weight = nn.Parameter(torch.zeros(())) if coverage else None

    def precompute(self, memory: Tensor) -> Tensor:
        return self.key_layer(memory)

    def score(self, query: Tensor, keys: Tensor, coverage: Tensor | None = None) -> Tensor:
        return self._linear_coverage(torch.bmm(query, keys.transpose(1, 2)), coverage)


class AdditiveAttention(Attention):
    """Additive (Bahdanau) / Luong concat: v_a^T tanh(W_q q + U_a h_j).

    U_a h_j is computed once per batch; each step adds only W_q q.  The energy is
    computed as ``v_a^T tanh(z) = 2 v_a^T sigmoid(2z) - sum(v_a)`` (exact), since
    torch's CPU tanh is several times slower than its sigmoid (see
    :mod:`seq2seq.modules.activations`); the tensor (.., S, A) is then written
    once and updated in place.  An ONNX export uses ``Tanh`` and the product with
    v_a, which onnxruntime runs faster than the identity's four element-wise ops.
    """

    def __init__(self, query_size: int, memory_size: int, attention_size: int, coverage: bool = False):
        super().__init__()
        self.key_layer = nn.Linear(memory_size, attention_size, bias=False)
        self.query_layer = nn.Linear(query_size, attention_size, bias=True)
        self.energy = nn.Linear(attention_size, 1, bias=False)
        self.coverage_weight = nn.Parameter(torch.zeros(attention_size)) if coverage else None

    def precompute(self, memory: Tensor) -> Tensor:
        return self.key_layer(memory)

    def score(self, query: Tensor, keys: Tensor, coverage: Tensor | None = None) -> Tensor:
        q = self.query_layer(query)                                   # (B, Tq, A)
        if torch.onnx.is_in_onnx_export():                            # onnxruntime: native Tanh, then v_a^T
            z = keys.unsqueeze(1) + q.unsqueeze(2)
            if coverage is not None:
                z = z + coverage.unsqueeze(-1) * self.coverage_weight
            return self.energy(torch.tanh(z)).squeeze(-1)
        # 2z in one pass, (B, Tq, S, A): doubling is exact, so 2q + 2k_j = 2(q + k_j) bit for bit
        z = torch.add((2 * q).unsqueeze(2), keys.unsqueeze(1), alpha=2)
        if coverage is not None:                                      # + w_c c_j (See et al. eq. 11)
            z = z + coverage.unsqueeze(-1) * (2 * self.coverage_weight)
        s = z.sigmoid_()                                              # sigmoid(2z), in place
        v = self.energy.weight[0].to(s.dtype)
        # v_a^T tanh(z) = 2 v_a^T sigmoid(2z) - sum(v_a).  With gradients, as multiply-and-sum:
        # a (.., A) x (A, 1) product's backward is an outer product that BLAS runs several
        # times slower than this on CPU; without them (decoding), one matrix-vector product.
        if torch.is_grad_enabled() and (s.requires_grad or v.requires_grad):
            energy = (s * (2 * v)).sum(-1)
        else:
            energy = torch.matmul(s, 2 * v)
        return energy - v.sum()                                       # (B, Tq, S)


def build_attention(kind: str, query_size: int, memory_size: int, attention_size: int | None,
                    coverage: bool = False) -> Attention | None:
    """Create the scorer named in the config (``none`` gives None); ``coverage`` adds
    the coverage term to its scores."""
    if kind == "none":
        return None
    if kind == "luong_dot":
        return DotAttention(query_size, memory_size, coverage)
    if kind == "luong_general":
        return GeneralAttention(query_size, memory_size, coverage)
    if kind in ("bahdanau", "luong_concat"):
        return AdditiveAttention(query_size, memory_size, attention_size or query_size, coverage)
    raise Seq2SeqError(f"unknown attention '{kind}'")
