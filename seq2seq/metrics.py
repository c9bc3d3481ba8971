"""Evaluation metrics.

G2P metrics follow the literature's definitions (Bisani & Ney 2008; Yao & Zweig
2015), over whitespace-separated output tokens (phonemes):

- WER: a word is wrong unless its hypothesis equals one of its references;
  WER = wrong / words.  Sequence accuracy = 1 - WER.
- PER: per word, the edit distance to the closest reference; PER = sum of those
  distances / sum of the lengths of the references chosen.

BLEU and chrF come from sacrebleu on detokenised text, with its signature.
All rates are returned in percent.
"""

from __future__ import annotations

from typing import Sequence

from rapidfuzz.distance import Levenshtein

METRICS = ("accuracy", "wer", "per", "bleu", "chrf")
HIGHER_IS_BETTER = {"accuracy": True, "bleu": True, "chrf": True, "wer": False, "per": False,
                    "loss": False, "ppl": False}


def _check(hyps: Sequence, refs: Sequence) -> None:
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses but {len(refs)} reference sets")
    if any(len(r) == 0 for r in refs):
        raise ValueError("every hypothesis needs at least one reference")


def word_error_rate(hyps: Sequence[Sequence[str]], refs: Sequence[Sequence[Sequence[str]]]) -> float:
    """G2P WER in percent: share of hypotheses equal to none of their references.

    Args:
        hyps: per example, the hypothesis tokens.
        refs: per example, one or more reference token lists.
    """
    _check(hyps, refs)
    wrong = sum(1 for h, rs in zip(hyps, refs) if not any(list(h) == list(r) for r in rs))
    return 100.0 * wrong / max(1, len(hyps))


def sequence_accuracy(hyps: Sequence[Sequence[str]], refs: Sequence[Sequence[Sequence[str]]]) -> float:
    """Percent of hypotheses equal to one of their references (100 - WER)."""
    return 100.0 - word_error_rate(hyps, refs)


def phoneme_error_rate(hyps: Sequence[Sequence[str]], refs: Sequence[Sequence[Sequence[str]]]) -> float:
    """G2P PER in percent: sum of edit distances to the closest reference over the
    sum of those references' lengths.  Among references at the same minimum
    distance, the first one listed is chosen.
    """
    _check(hyps, refs)
    errors = length = 0
    for h, rs in zip(hyps, refs):
        best = min(((Levenshtein.distance(list(h), list(r)), i) for i, r in enumerate(rs)))
        errors += best[0]
        length += len(rs[best[1]])
    return 100.0 * errors / max(1, length)


def oracle_error_rates(nbest: Sequence[Sequence[Sequence[str]]], refs: Sequence[Sequence[Sequence[str]]]
                       ) -> tuple[float, float]:
    """n-best oracle WER and PER in percent: each example scored by its best hypothesis.

    WER counts an example wrong when none of its hypotheses equals one of its
    references; PER takes, per example, the (hypothesis, reference) pair with the
    smallest edit distance (the first such pair on ties) and divides the summed
    distances by the summed lengths of the chosen references.

    Args:
        nbest: per example, its hypotheses (token lists), at least one.
        refs: per example, one or more reference token lists.

    Raises:
        ValueError: mismatched lengths or an example without hypotheses or references.
    """
    _check(nbest, refs)
    if any(len(h) == 0 for h in nbest):
        raise ValueError("every example needs at least one hypothesis")
    wrong = errors = length = 0
    for hs, rs in zip(nbest, refs):
        wrong += not any(list(h) == list(r) for h in hs for r in rs)
        dist, _, ref_len = min((Levenshtein.distance(list(h), list(r)), (i, j), len(r))
                               for i, h in enumerate(hs) for j, r in enumerate(rs))
        errors += dist
        length += ref_len
    return 100.0 * wrong / max(1, len(nbest)), 100.0 * errors / max(1, length)


def bleu(hyps: Sequence[str], refs: Sequence[Sequence[str]], lowercase: bool = False) -> tuple[float, str]:
    """Corpus BLEU (sacrebleu defaults: 13a tokenisation, exp smoothing) and its signature.

    Args:
        hyps: detokenised hypotheses.
        refs: per hypothesis, its references (they may differ in number).
        lowercase: compare case-insensitively (sacrebleu's ``-lc``; signature ``case:lc``),
            for models trained on lower-cased text.
    """
    import sacrebleu

    _check(hyps, refs)
    streams = _reference_streams(refs)
    metric = sacrebleu.metrics.BLEU(lowercase=lowercase)
    score = metric.corpus_score(list(hyps), streams)
    return score.score, str(metric.get_signature())


def chrf(hyps: Sequence[str], refs: Sequence[Sequence[str]], lowercase: bool = False) -> tuple[float, str]:
    """Corpus chrF (sacrebleu defaults: chrF2, character 6-grams) and its signature;
    ``lowercase`` as in :func:`bleu`."""
    import sacrebleu

    _check(hyps, refs)
    metric = sacrebleu.metrics.CHRF(lowercase=lowercase)
    score = metric.corpus_score(list(hyps), _reference_streams(refs))
    return score.score, str(metric.get_signature())


def _reference_streams(refs: Sequence[Sequence[str]]) -> list[list]:
    # sacrebleu wants one stream per reference slot; missing slots are None.
    width = max(len(r) for r in refs)
    return [[r[k] if k < len(r) else None for r in refs] for k in range(width)]


def compute_metrics(names: Sequence[str], hyp_tokens: Sequence[Sequence[str]],
                    ref_tokens: Sequence[Sequence[Sequence[str]]], hyp_text: Sequence[str],
                    ref_text: Sequence[Sequence[str]], lowercase: bool = False) -> dict[str, float | str]:
    """Compute the named metrics (see :data:`METRICS`).

    Token-level metrics (accuracy, WER, PER) use the token lists; BLEU and chrF
    the detokenised text, case-insensitively when ``lowercase`` (a model trained with
    ``data.lowercase`` against the raw references).  BLEU/chrF signatures are
    returned under ``bleu_signature`` / ``chrf_signature``.
    """
    out: dict[str, float | str] = {}
    for name in names:
        if name == "accuracy":
            out[name] = sequence_accuracy(hyp_tokens, ref_tokens)
        elif name == "wer":
            out[name] = word_error_rate(hyp_tokens, ref_tokens)
        elif name == "per":
            out[name] = phoneme_error_rate(hyp_tokens, ref_tokens)
        elif name == "bleu":
            out["bleu"], out["bleu_signature"] = bleu(hyp_text, ref_text, lowercase)
        elif name == "chrf":
            out["chrf"], out["chrf_signature"] = chrf(hyp_text, ref_text, lowercase)
        else:
            raise ValueError(f"unknown metric {name!r}")
    return out
