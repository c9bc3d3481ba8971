"""What every decoding strategy shares: results, length caps, penalties and the
per-step constraints on the next-token distribution (the options themselves are
:class:`~seq2seq.config.decoding.DecodeOptions`).

Scoring follows Wu et al. 2016 (GNMT), sec. 7:
``s(Y, X) = log P(Y | X) / lp(Y) + cp(X; Y)`` with the length penalty
``lp(Y) = ((5 + |Y|) / 6) ** alpha`` and the coverage penalty
``cp(X; Y) = beta * sum_i log(min(sum_j a_ij, 1))`` over source positions i and
output positions j.  ``length_normalization='average'`` uses ``lp(Y) = |Y|``
instead.  |Y| counts output tokens, ``<eos>`` included when it was produced.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor

from seq2seq.config.decoding import DecodeOptions
from seq2seq.data.batching import Batch

NEG_INF = float("-inf")


@dataclass
class Hypothesis:
    """One decoded output.

    Attributes:
        tokens: output ids without ``<bos>`` / ``<eos>``.
        score: the ranking score s(Y, X) (log-probability with the configured
            length and coverage penalties; equal to ``log_prob`` without them).
        log_prob: log P(Y | X) in nats, ``<eos>`` included when it was produced.
        attention: (steps, src_len) weights, one row per output position with the
            ``<eos>`` step last when produced; or None.
    """

    tokens: list[int]
    score: float
    log_prob: float
    attention: Optional[Tensor] = None


# Per sentence, its hypotheses best first.
NBest = list[list[Hypothesis]]


def length_caps(src_lengths: Tensor, options: DecodeOptions) -> Tensor:
    """(batch,) output length caps in tokens: ``min(max_len, floor(a * src_len + b))``, >= 1."""
    cap = (src_lengths.float() * options.max_len_a + options.max_len_b).floor().long()
    if options.max_len is not None:
        cap = cap.clamp(max=options.max_len)
    return cap.clamp(min=1)


def length_penalty(lengths: Tensor, alpha: float, kind: str) -> Tensor:
    """lp(Y): ``((5 + |Y|) / 6) ** alpha`` (GNMT) or ``|Y|`` (average); 1 when alpha == 0.

    Args:
        lengths: (...) output lengths |Y| in tokens (float or int).
    """
    lengths = lengths.float()
    if alpha == 0:
        return torch.ones_like(lengths)
    if kind == "average":
        return lengths.clamp(min=1)
    return ((5.0 + lengths) / 6.0) ** alpha


def coverage_penalty(coverage: Tensor, src_mask: Tensor, beta: float) -> Tensor:
    """cp = beta * sum_i log(min(coverage_i, 1)) over real source positions.

    Args:
        coverage: (..., src_len) attention summed over output positions.
        src_mask: (..., src_len) True on real source tokens.

    Returns:
        (...) penalties (<= 0).  Coverage is floored at 1e-10 so that a source
        position never attended gives a large finite penalty, not -inf.
    """
    logs = coverage.clamp(min=1e-10, max=1.0).log().masked_fill(~src_mask, 0.0)
    return beta * logs.sum(-1)


def forbid_early_eos(logp: Tensor, produced: int, options: DecodeOptions, eos_id: int) -> None:
    """In place: <eos> gets -inf while fewer than ``min_len`` tokens are out.

    Args:
        logp: (rows, V) next-token log-probabilities.
        produced: output tokens so far (the same for every row).
    """
    if produced < options.min_len:
        logp[:, eos_id] = NEG_INF


def block_repeated_ngrams(logp: Tensor, history: Tensor, n: int) -> None:
    """In place: forbid any token that would repeat an n-gram of ``history``.

    Args:
        logp: (rows, V) next-token log-probabilities.
        history: (rows, t) output tokens so far (no ``<bos>``).
        n: n-gram size (>= 1).
    """
    t = history.size(1)
    if n < 1 or t < n:
        return
    if n == 1:
        logp.scatter_(1, history, NEG_INF)
        return
    windows = history.unfold(1, n, 1)                                  # (rows, t - n + 1, n)
    prefix = history[:, t - n + 1:]                                    # (rows, n - 1) the last n-1 tokens
    match = (windows[:, :, :-1] == prefix.unsqueeze(1)).all(-1)       # (rows, t - n + 1)
    rows, pos = match.nonzero(as_tuple=True)
    if rows.numel():
        logp[rows, windows[rows, pos, -1]] = NEG_INF


def filter_logits(logits: Tensor, top_k: int, top_p: float) -> Tensor:
    """Keep the top-k tokens and/or the nucleus of mass top_p; the rest get -inf.

    Args:
        logits: (rows, V) (temperature already applied).
        top_k: keep the k highest (0 = no limit).
        top_p: keep token i (in descending order) while the mass before it is < top_p.

    Returns:
        (rows, V) filtered logits; the most likely token is always kept.
    """
    if top_k > 0 and top_k < logits.size(-1):
        kth = logits.topk(top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, NEG_INF)
    if top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        mass_before = probs.cumsum(-1) - probs
        remove = torch.zeros_like(logits, dtype=torch.bool).scatter_(1, order, mass_before >= top_p)
        logits = logits.masked_fill(remove, NEG_INF)
    return logits


def start_state(model, batch: Batch):
    """The decoder's start state for a batch: ``model.encode(src, lengths, mask)``, plus
    the source in the extended vocabulary when the batch carries one (copy attention),
    or each member's own batch (an ensemble, :mod:`seq2seq.models.ensemble`)."""
    extra = {}
    if getattr(batch, "src_ext", None) is not None:
        extra["src_ext"] = batch.src_ext
    if getattr(batch, "members", None) is not None:
        extra["members"] = batch.members
    return model.encode(batch.src, batch.src_lengths, batch.src_mask, **extra)[1]
