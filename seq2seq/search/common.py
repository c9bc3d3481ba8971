"""What every decoding strategy shares: options, results, length caps, penalties
and the per-step constraints on the next-token distribution.

Scoring follows Wu et al. 2016 (GNMT), sec. 7:
``s(Y, X) = log P(Y | X) / lp(Y) + cp(X; Y)`` with the length penalty
``lp(Y) = ((5 + |Y|) / 6) ** alpha`` and the coverage penalty
``cp(X; Y) = beta * sum_i log(min(sum_j a_ij, 1))`` over source positions i and
output positions j.  ``length_normalization='average'`` uses ``lp(Y) = |Y|``
instead.  |Y| counts output tokens, ``<eos>`` included when it was produced.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

import torch
from torch import Tensor

from seq2seq.data.batching import Batch
from seq2seq.errors import Seq2SeqError

NEG_INF = float("-inf")


@dataclass
class DecodeOptions:
    """How to decode.  Defaults give greedy decoding.

    Attributes:
        strategy: ``greedy``, ``beam`` or ``sample``.
        beam_size: hypotheses kept per sentence (``beam``).
        nbest: hypotheses returned per sentence (<= beam_size; ``sample``: use num_samples).
        length_penalty: alpha of the length penalty (0 = rank by log-probability).
        length_normalization: ``gnmt`` (((5 + |Y|) / 6) ** alpha) or ``average`` (|Y|,
            used when length_penalty > 0).
        coverage_penalty: beta of the coverage penalty (0 = off; needs attention).
        min_len: output tokens before ``<eos>`` is allowed.
        max_len: absolute cap on output tokens (None: only the relative cap).
        max_len_a, max_len_b: relative cap ``floor(a * src_len + b)``.
        no_repeat_ngram: block any n-gram of this size from repeating (0 = off).
        temperature: softmax temperature (``sample``).
        top_k: sample among the k most likely tokens (0 = all).
        top_p: sample from the smallest set of tokens whose probability reaches p
            (nucleus sampling, Holtzman et al. 2020; 1.0 = all).
        num_samples: samples drawn per input (``sample``).
        seed: seed of the sampling generator (None: torch's global generator).
        return_attention: keep each hypothesis's attention matrix.
        replace_unk: replace each ``<unk>`` output by its most attended source token
            (Luong et al. 2015; applied after the search, which then keeps attention).
        precision: ``fp32``, or ``bf16``: matrix products in bfloat16 under autocast
            (scores, softmax and the search itself stay fp32); several times faster
            on CPUs with AVX512-BF16 / AMX and on GPUs, with slightly different scores.
    """

    strategy: Literal["greedy", "beam", "sample"] = "greedy"
    beam_size: int = 5
    nbest: int = 1
    length_penalty: float = 0.0
    length_normalization: Literal["gnmt", "average"] = "gnmt"
    coverage_penalty: float = 0.0
    min_len: int = 0
    max_len: Optional[int] = None
    max_len_a: float = 1.5
    max_len_b: int = 10
    no_repeat_ngram: int = 0
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    num_samples: int = 1
    seed: Optional[int] = None
    return_attention: bool = False
    replace_unk: bool = False
    precision: Literal["fp32", "bf16"] = "fp32"

    def validate(self) -> "DecodeOptions":
        """Check ranges; returns self.

        Raises:
            Seq2SeqError: naming the first bad option.
        """
        checks = [
            (self.strategy in ("greedy", "beam", "sample"), f"strategy must be greedy, beam or sample, "
                                                            f"not {self.strategy!r}"),
            (self.beam_size >= 1, f"beam size must be >= 1, got {self.beam_size}"),
            (self.nbest >= 1, f"nbest must be >= 1, got {self.nbest}"),
            (self.strategy != "beam" or self.nbest <= self.beam_size,
             f"nbest ({self.nbest}) must not exceed the beam size ({self.beam_size})"),
            (self.strategy != "greedy" or self.nbest == 1, "greedy decoding gives one hypothesis (nbest 1); "
                                                           "use beam search for n-best lists"),
            (self.length_penalty >= 0, f"length penalty must be >= 0, got {self.length_penalty}"),
            (self.length_normalization in ("gnmt", "average"),
             f"length normalization must be gnmt or average, not {self.length_normalization!r}"),
            (self.coverage_penalty >= 0, f"coverage penalty must be >= 0, got {self.coverage_penalty}"),
            (self.min_len >= 0, f"min length must be >= 0, got {self.min_len}"),
            (self.max_len is None or self.max_len >= 1, f"max length must be >= 1, got {self.max_len}"),
            (self.max_len_a >= 0 and self.max_len_b >= 1, "max_len_a must be >= 0 and max_len_b >= 1"),
            (self.no_repeat_ngram >= 0, f"no-repeat n-gram size must be >= 0, got {self.no_repeat_ngram}"),
            (self.temperature > 0, f"temperature must be > 0, got {self.temperature}"),
            (self.top_k >= 0, f"top-k must be >= 0, got {self.top_k}"),
            (0 < self.top_p <= 1, f"top-p must be in (0, 1], got {self.top_p}"),
            (self.num_samples >= 1, f"num samples must be >= 1, got {self.num_samples}"),
            (self.precision in ("fp32", "bf16"), f"precision must be fp32 or bf16, not {self.precision!r}"),
            (self.strategy != "sample" or self.nbest <= self.num_samples,
             f"nbest ({self.nbest}) must not exceed num samples ({self.num_samples})"),
        ]
        for ok, message in checks:
            if not ok:
                raise Seq2SeqError(message)
        return self


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
    the source in the extended vocabulary when the batch carries one (copy attention)."""
    src_ext = getattr(batch, "src_ext", None)
    if src_ext is not None:
        return model.encode(batch.src, batch.src_lengths, batch.src_mask, src_ext)[1]
    return model.encode(batch.src, batch.src_lengths, batch.src_mask)[1]
