"""The decoding options, defined once: the config's ``decoding`` section, the
``predict`` / ``evaluate`` flags (``--beam-size``, ``--length-penalty``, ...) and the
keywords of ``Seq2Seq.predict`` all come from :class:`DecodeOptions` and are
validated by it.

Scoring follows Wu et al. 2016 (GNMT), sec. 7: ``s(Y, X) = log P(Y | X) / lp(Y) + cp(X; Y)``
with ``lp(Y) = ((5 + |Y|) / 6) ** alpha`` and ``cp = beta * sum_i log(min(sum_j a_ij, 1))``.
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, ValidationError, model_validator

from seq2seq.config.base import Section
from seq2seq.errors import Seq2SeqError


class DecodeOptions(Section):
    """How to decode; the defaults give greedy search.  Built directly (API, CLI), a
    bad value raises :class:`~seq2seq.errors.Seq2SeqError` naming the option; read
    from a config file, it names the file and line.

    Raises:
        Seq2SeqError: an out-of-range value or an inconsistent combination
            (e.g. nbest > beam_size).
    """

    model_config = Section.model_config | {"frozen": True, "validate_assignment": False}

    strategy: Literal["greedy", "beam", "sample"] = Field("greedy", description="greedy, beam or sample")
    beam_size: int = Field(5, ge=1, description="hypotheses kept per sentence (beam)")
    nbest: int = Field(1, ge=1, description="hypotheses returned per sentence")
    length_penalty: float = Field(0.0, ge=0, description="alpha of GNMT's length penalty (0 = off)")
    length_normalization: Literal["gnmt", "average"] = Field(
        "gnmt", description="lp(Y) = ((5 + |Y|) / 6) ** alpha (gnmt) or |Y| (average)")
    coverage_penalty: float = Field(0.0, ge=0, description="beta of GNMT's coverage penalty (0 = off)")
    min_len: int = Field(0, ge=0, description="output tokens before <eos> is allowed")
    max_len: Optional[int] = Field(None, ge=1, description="absolute cap on output tokens")
    max_len_a: float = Field(1.5, ge=0, description="relative cap floor(a * src_len + b): a")
    max_len_b: int = Field(10, ge=1, description="relative cap floor(a * src_len + b): b")
    no_repeat_ngram: int = Field(0, ge=0, description="block repeated n-grams of this size (0 = off)")
    temperature: float = Field(1.0, gt=0, description="softmax temperature (sample)")
    top_k: int = Field(0, ge=0, description="sample among the k most likely tokens (0 = all)")
    top_p: float = Field(1.0, gt=0, le=1, description="nucleus sampling mass (Holtzman et al. 2020)")
    num_samples: int = Field(1, ge=1, description="samples per input (sample)")
    seed: Optional[int] = Field(None, description="seed of the sampling generator")
    precision: Literal["fp32", "bf16"] = Field("fp32", description="bf16: matrix products in bfloat16")
    replace_unk: bool = Field(False, description="replace each <unk> output by its most attended source "
                                                 "token (Luong et al. 2015)")
    return_attention: bool = Field(False, description="keep each hypothesis's attention matrix")

    def __init__(self, **values):
        try:
            super().__init__(**values)
        except ValidationError as err:
            raise Seq2SeqError("; ".join(_describe(e) for e in err.errors())) from None

    @model_validator(mode="after")
    def _check(self) -> "DecodeOptions":
        if self.strategy == "beam" and self.nbest > self.beam_size:
            raise ValueError(f"nbest ({self.nbest}) must not exceed the beam size ({self.beam_size})")
        if self.strategy == "greedy" and self.nbest > 1:
            raise ValueError("greedy decoding gives one hypothesis (nbest 1); use beam search for n-best lists")
        if self.strategy == "sample" and self.nbest > self.num_samples:
            raise ValueError(f"nbest ({self.nbest}) must not exceed num samples ({self.num_samples})")
        return self

    def replace(self, **changes) -> "DecodeOptions":
        """A copy with ``changes`` (None values ignored), validated again.

        ``beam=N`` is shorthand for ``strategy='beam', beam_size=N`` (``beam=1``: greedy).

        Raises:
            Seq2SeqError: an unknown option or an invalid value or combination.
        """
        beam = changes.pop("beam", None)
        if beam is not None:
            changes.setdefault("strategy", "beam" if beam > 1 else "greedy")
            changes["beam_size"] = beam
        unknown = sorted(set(changes) - set(DecodeOptions.model_fields))
        if unknown:
            raise Seq2SeqError(f"unknown decoding option(s) {unknown}; valid: {sorted(DecodeOptions.model_fields)}")
        fields = {k: getattr(self, k) for k in DecodeOptions.model_fields}
        return DecodeOptions(**{**fields, **{k: v for k, v in changes.items() if v is not None}})


def _describe(error: dict) -> str:
    """One validation error of a directly built :class:`DecodeOptions`, naming the option
    as a keyword and as a flag: ``decoding option 'top_p' (--top-p): ... (got 0.0)``."""
    msg = error["msg"].removeprefix("Value error, ")
    if not error["loc"]:
        return msg
    name = str(error["loc"][0])
    if error["type"] == "extra_forbidden":
        return f"unknown decoding option {name!r}; valid: {', '.join(DecodeOptions.model_fields)}"
    return f"decoding option {name!r} (--{name.replace('_', '-')}): {msg} (got {error.get('input')!r})"


class DecodingConfig(DecodeOptions):
    """The config's ``decoding`` section: :class:`DecodeOptions` for validation,
    evaluation and prediction, and ``batch_size`` (sentences decoded together)."""

    batch_size: int = Field(256, ge=1, description="sentences decoded together")
