"""Typed configuration: the schema, YAML loading and ``--set`` overrides.

A run is described by one YAML file (``configs/g2p_cmudict.yaml`` is the fully
commented reference).  It is validated against the pydantic models below; every
section forbids unknown keys, so a misspelled key fails loudly with its dotted
path, its line in the file and the nearest valid key::

    configs/x.yaml:14: unknown key 'model.decoder.atention' (did you mean 'attention'?)

Overrides from the command line use dotted paths and YAML values:
``--set training.max_steps=2000 model.decoder.attention=luong_dot``.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from seq2seq.errors import Seq2SeqError
from seq2seq.search.common import DecodeOptions

Cell = Literal["rnn", "gru", "lstm"]
AttentionType = Literal["none", "bahdanau", "luong_dot", "luong_general", "luong_concat"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SentencePieceConfig(_Section):
    """Subword model(s) for ``src_tokenizer`` / ``tgt_tokenizer: sentencepiece``.

    Trained by ``seq2seq train`` on ``data.train`` (whatever file it names) and saved
    in the run directory: ``sentencepiece.model`` when ``joint`` (one model over
    sources and targets, both sides sentencepiece), else ``src_sentencepiece.model``
    / ``tgt_sentencepiece.model``.  ``model_type``: ``unigram`` (Kudo 2018) or
    ``bpe`` (Sennrich et al. 2016).  ``vocab_size``: pieces per model (a soft limit
    on small corpora).  ``character_coverage``: share of characters covered (1.0
    for alphabetic scripts, about 0.9995 for Chinese or Japanese).
    """

    model_type: Literal["unigram", "bpe"] = "unigram"
    vocab_size: int = Field(8000, ge=8)
    joint: bool = True
    character_coverage: float = Field(1.0, gt=0, le=1)


class DataConfig(_Section):
    """Where the parallel data is and how it becomes token ids.

    TSV files hold ``source<TAB>target`` (training) or ``source<TAB>ref1<TAB>ref2...``
    (valid/test).  Relative paths are resolved against the working directory.
    ``autoencoder``: the target is the source (a sequence autoencoder); only the
    first column of each file is read.

    ``max_src_len`` (tokens) and ``long_source`` say what happens to a longer
    source, in training data and in prediction input alike: ``drop`` (training:
    the pair is left out; prediction: an empty output line, and a warning),
    ``truncate`` (its first ``max_src_len`` tokens are kept), ``reject`` (an error
    naming the file and line).  Training pairs with a target longer than
    ``max_tgt_len`` are dropped.
    """

    train: str
    valid: Optional[str] = None
    test: Optional[str] = None
    src_tokenizer: Literal["char", "word", "sentencepiece"] = "char"
    tgt_tokenizer: Literal["char", "word", "sentencepiece"] = "word"
    sentencepiece: SentencePieceConfig = SentencePieceConfig()
    lowercase: bool = False
    src_min_freq: int = Field(1, ge=1)
    tgt_min_freq: int = Field(1, ge=1)
    src_max_size: Optional[int] = Field(None, ge=1)
    tgt_max_size: Optional[int] = Field(None, ge=1)
    max_src_len: Optional[int] = Field(None, ge=1)
    long_source: Literal["drop", "truncate", "reject"] = "drop"
    max_tgt_len: Optional[int] = Field(None, ge=1)
    autoencoder: bool = False

    @model_validator(mode="after")
    def _check(self) -> "DataConfig":
        if self.autoencoder and self.src_tokenizer != self.tgt_tokenizer:
            raise ValueError("autoencoder (target = source) needs src_tokenizer == tgt_tokenizer")
        if self.sentencepiece.joint and "sentencepiece" in (self.src_tokenizer, self.tgt_tokenizer) \
                and self.src_tokenizer != self.tgt_tokenizer:
            raise ValueError("sentencepiece.joint needs src_tokenizer and tgt_tokenizer both 'sentencepiece'; "
                             "set data.sentencepiece.joint: false for a subword model on one side only")
        return self


class EncoderConfig(_Section):
    """Embedding + RNN encoder (Cho et al. 2014; Bahdanau et al. 2015, sec. 3.2), or a
    Transformer encoder (``type: transformer``, Vaswani et al. 2017: ``hidden_size`` is
    d_model, with ``heads`` and ``ff_size``; ``cell`` and ``bidirectional`` do not apply)."""

    type: Literal["rnn", "transformer"] = "rnn"
    heads: int = Field(4, ge=1)
    ff_size: Optional[int] = Field(None, ge=1)
    cell: Cell = "lstm"
    embedding_size: int = Field(128, ge=1)
    hidden_size: int = Field(256, ge=1)
    layers: int = Field(1, ge=1)
    bidirectional: bool = True
    dropout: float = Field(0.1, ge=0.0, lt=1.0)


class DecoderConfig(_Section):
    """Embedding + RNN decoder with optional attention.

    ``attention`` picks both the score function and where it is applied:
    ``bahdanau`` scores with the previous state before the cell and feeds the
    context into it (Bahdanau et al. 2015); ``luong_*`` score with the current
    state after the cell and form ``tanh(W[h; c])`` (Luong et al. 2015, eq. 5),
    optionally fed to the next input (``input_feeding``, Luong sec. 3.3).

    ``copy_attention``: pointer-generator output over the target vocabulary extended
    by each source's unknown words (See et al. 2017); ``coverage``: the attention
    already paid to each source position enters its score, and the coverage loss
    (weight ``training.coverage_loss_weight``) penalises attending to it again.

    ``type: transformer`` is a Transformer decoder (Vaswani et al. 2017; ``hidden_size``
    = d_model, ``heads``, ``ff_size`` default 4 x d_model) with its own multi-head
    cross-attention; ``cell``, ``attention`` and the RNN input options do not apply.
    """

    type: Literal["rnn", "transformer"] = "rnn"
    heads: int = Field(4, ge=1)
    ff_size: Optional[int] = Field(None, ge=1)
    cell: Cell = "lstm"
    embedding_size: int = Field(128, ge=1)
    hidden_size: int = Field(256, ge=1)
    layers: int = Field(1, ge=1)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    attention: AttentionType = "luong_general"
    attention_size: Optional[int] = Field(None, ge=1)
    input_feeding: bool = False
    context_every_step: bool = False
    feed_previous_output: bool = True
    copy_attention: bool = False
    coverage: bool = False
    tie_embeddings: bool = False

    @model_validator(mode="after")
    def _check(self) -> "DecoderConfig":
        if self.input_feeding and not self.attention.startswith("luong"):
            raise ValueError("input_feeding needs a luong_* attention (it feeds tanh(W[h; c]))")
        if self.tie_embeddings and self.embedding_size != self.hidden_size:
            raise ValueError("tie_embeddings needs embedding_size == hidden_size")
        if (self.copy_attention or self.coverage) and self.attention == "none":
            raise ValueError("copy and coverage need an attention type (they read the attention weights)")
        if self.type == "transformer" and (self.input_feeding or self.context_every_step or self.copy_attention
                                           or self.coverage or not self.feed_previous_output):
            raise ValueError("input_feeding, context_every_step and feed_previous_output: false are RNN "
                             "decoder options; the transformer decoder reads its previous outputs and attends")
        if not (self.feed_previous_output or self.context_every_step or self.input_feeding
                or self.attention == "bahdanau"):
            raise ValueError("feed_previous_output: false leaves the decoder cell without input; also set "
                             "context_every_step, input_feeding or attention: bahdanau")
        return self


class ModelConfig(_Section):
    """The encoder, the bridge between them, and the decoder.

    ``context`` is the fixed-size summary c of the source that the bridge (and
    ``decoder.context_every_step``) reads: ``last``, the encoder's final states
    (Sutskever et al. 2014; Cho et al. 2014, eq. 2 with f = the final state), or
    ``mean`` / ``max``, a learned transform ``tanh(W pool_j(h_j) + b)`` of all the
    encoder's states.  ``reverse_source`` feeds the source backwards (Sutskever et
    al. 2014, sec. 3.3); attention still sees the states in source order.
    ``latent_size``: a variational seq2seq (Bowman et al. 2016): c gives the mean
    and log-variance of a Gaussian z, the decoder starts from z (bridge
    ``projection``), and training adds the KL term to the loss.
    """

    encoder: EncoderConfig = EncoderConfig()
    decoder: DecoderConfig = DecoderConfig()
    bridge: Literal["none", "last", "projection"] = "projection"
    context: Literal["last", "mean", "max"] = "last"
    reverse_source: bool = False
    latent_size: Optional[int] = Field(None, ge=1)

    @model_validator(mode="after")
    def _check(self) -> "ModelConfig":
        if self.latent_size is not None:
            d = self.decoder
            if d.type != "rnn" or d.attention != "none" or d.context_every_step:
                raise ValueError("a variational seq2seq (latent_size) passes the source only through z: it needs "
                                 "an RNN decoder with attention: none and context_every_step: false")
            if self.bridge != "projection":
                raise ValueError("a variational seq2seq (latent_size) starts the decoder from z through "
                                 "bridge: projection")
        return self


class TeacherForcingConfig(_Section):
    """What the decoder reads during training: the gold previous token (teacher
    forcing) or, with probability 1 - eps_i, the model's own prediction
    (scheduled sampling, Bengio et al. 2015).

    eps_i, the probability of feeding the gold token at update i (sec. 2.4):
    ``constant``: ``ratio`` (the seeds' teacher_forcing_ratio; 1 = full teacher
    forcing); ``linear``: ``max(end, start - (start - end) * i / steps)``;
    ``exponential``: ``k ** i`` (k < 1); ``inverse_sigmoid``: ``k / (k + exp(i / k))``
    (k >= 1).  A coin per target token decides.  The fed prediction is the argmax
    or a sample at ``temperature``.  ``mode``: ``two_pass`` predicts with a
    teacher-forced pass and trains a second pass on the mixed inputs (Duckworth et
    al. 2019), fast when the decoder runs a whole target in one call; ``exact``
    feeds each step's own prediction to the next step; ``auto`` picks two_pass for
    such decoders and exact otherwise.
    """

    schedule: Literal["constant", "linear", "exponential", "inverse_sigmoid"] = "constant"
    ratio: float = Field(1.0, ge=0.0, le=1.0)
    start: float = Field(1.0, ge=0.0, le=1.0)
    end: float = Field(0.0, ge=0.0, le=1.0)
    steps: int = Field(10000, ge=1)
    k: Optional[float] = Field(None, gt=0)
    sampling: Literal["argmax", "sample"] = "argmax"
    temperature: float = Field(1.0, gt=0)
    mode: Literal["auto", "two_pass", "exact"] = "auto"

    @model_validator(mode="after")
    def _check(self) -> "TeacherForcingConfig":
        if self.schedule == "exponential" and not (self.k is not None and self.k < 1):
            raise ValueError("the exponential schedule eps_i = k ** i needs 0 < k < 1 (e.g. k: 0.9999)")
        if self.schedule == "inverse_sigmoid" and not (self.k is not None and self.k >= 1):
            raise ValueError("the inverse_sigmoid schedule k / (k + exp(i / k)) needs k >= 1 (e.g. k: 2000)")
        return self


class TrainingConfig(_Section):
    """Optimisation, limits, validation and early stopping.

    ``weight_decay`` with adam or sgd is the L2 penalty of the seeds'
    ``lambda_l2_reg`` (gradient + lambda * w, i.e. loss + lambda/2 * sum w^2);
    with adamw it is decoupled (Loshchilov & Hutter 2019).
    ``accumulate_batches`` sums the gradients of that many batches per update
    (loss normalised by all their tokens).  ``scheduler``: ``plateau`` (multiply
    by ``plateau_factor`` after ``plateau_patience`` validations without
    improvement), ``inverse_sqrt`` (linear warm-up over ``warmup_steps``, then
    ``lr * sqrt(warmup_steps / step)``; Vaswani et al. 2017), ``exponential``
    (``lr * decay_rate ** (step / decay_steps)`` after the warm-up); never below
    ``min_learning_rate``.  ``keep_checkpoints`` keeps the weights of the last N
    validations for ``seq2seq average``.  ``word_dropout`` replaces decoder input
    tokens by ``<unk>`` at that rate (Bowman et al. 2016, sec. 3.2).  With
    ``model.latent_size`` the KL term is weighted by ``kl_weight`` times the
    annealing factor: 1 (``constant``), ``min(1, i / kl_anneal_steps)`` (``linear``)
    or ``1 / (1 + exp(-10 (i / kl_anneal_steps - 0.5)))`` (``logistic``, sec. 3.1).
    """

    batch_size: int = Field(64, ge=1)
    batch_type: Literal["sentences", "tokens"] = "sentences"
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    learning_rate: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    momentum: float = Field(0.0, ge=0)
    clip_grad_norm: Optional[float] = Field(1.0, gt=0)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    accumulate_batches: int = Field(1, ge=1)
    scheduler: Literal["none", "plateau", "inverse_sqrt", "exponential"] = "plateau"
    plateau_factor: float = Field(0.5, gt=0, lt=1)
    plateau_patience: int = Field(2, ge=0)
    warmup_steps: int = Field(0, ge=0)
    decay_rate: float = Field(0.5, gt=0, le=1)
    decay_steps: int = Field(10000, ge=1)
    min_learning_rate: float = Field(1e-5, ge=0)
    teacher_forcing: TeacherForcingConfig = TeacherForcingConfig()
    coverage_loss_weight: float = Field(1.0, ge=0)
    word_dropout: float = Field(0.0, ge=0, lt=1)
    kl_anneal: Literal["constant", "linear", "logistic"] = "logistic"
    kl_anneal_steps: int = Field(5000, ge=1)
    kl_weight: float = Field(1.0, ge=0)
    keep_checkpoints: int = Field(0, ge=0)
    max_steps: Optional[int] = Field(None, ge=1)
    max_epochs: Optional[int] = Field(None, ge=1)
    max_minutes: Optional[float] = Field(None, gt=0)
    validate_every: int = Field(1000, ge=1)
    log_every: int = Field(100, ge=1)
    early_stopping_metric: Literal["loss", "ppl", "wer", "per", "accuracy", "bleu", "chrf"] = "wer"
    patience: Optional[int] = Field(None, ge=1)
    num_threads: Optional[int] = Field(None, ge=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["fp32", "bf16"] = "fp32"
    progress_bar: bool = True

    @model_validator(mode="after")
    def _check(self) -> "TrainingConfig":
        if self.max_steps is None and self.max_epochs is None and self.max_minutes is None:
            raise ValueError("set at least one of max_steps, max_epochs, max_minutes")
        if self.scheduler == "inverse_sqrt" and self.warmup_steps < 1:
            raise ValueError("scheduler inverse_sqrt needs warmup_steps >= 1")
        return self


class DecodingConfig(_Section):
    """Decoding for validation, evaluation and prediction (see :class:`~seq2seq.search.DecodeOptions`).

    Output stops at ``<eos>`` or after ``min(max_len, max_len_a * src_len + max_len_b)``
    tokens.  ``strategy``: greedy, beam (``beam_size``, ``nbest``, length and
    coverage penalties of Wu et al. 2016) or sample (``temperature``, ``top_k``,
    ``top_p``, ``num_samples``, ``seed``).  ``replace_unk``: each ``<unk>`` in the
    output becomes the source token with the largest attention weight at that step
    (Luong et al. 2015; needs attention).
    """

    strategy: Literal["greedy", "beam", "sample"] = "greedy"
    beam_size: int = Field(5, ge=1)
    nbest: int = Field(1, ge=1)
    length_penalty: float = Field(0.0, ge=0)
    length_normalization: Literal["gnmt", "average"] = "gnmt"
    coverage_penalty: float = Field(0.0, ge=0)
    min_len: int = Field(0, ge=0)
    max_len: Optional[int] = Field(None, ge=1)
    max_len_a: float = Field(1.5, ge=0)
    max_len_b: int = Field(10, ge=1)
    no_repeat_ngram: int = Field(0, ge=0)
    temperature: float = Field(1.0, gt=0)
    top_k: int = Field(0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    num_samples: int = Field(1, ge=1)
    seed: Optional[int] = None
    precision: Literal["fp32", "bf16"] = "fp32"
    replace_unk: bool = False
    batch_size: int = Field(256, ge=1)

    def options(self, **overrides) -> DecodeOptions:
        """These settings as :class:`~seq2seq.search.DecodeOptions`, with ``overrides`` applied.

        Raises:
            Seq2SeqError: an inconsistent combination (e.g. nbest > beam_size).
        """
        fields = self.model_dump(exclude={"batch_size"})
        fields.update({k: v for k, v in overrides.items() if v is not None})
        return DecodeOptions(**fields).validate()


class EvaluationConfig(_Section):
    """Metrics computed at validation and by ``seq2seq evaluate``."""

    metrics: list[Literal["accuracy", "wer", "per", "bleu", "chrf"]] = ["accuracy", "wer", "per"]


class Config(_Section):
    """A whole run: data, model, training, decoding, evaluation."""

    name: str = "run"
    seed: int = 1
    data: DataConfig
    model: ModelConfig = ModelConfig()
    training: TrainingConfig = TrainingConfig(max_steps=10000)
    decoding: DecodingConfig = DecodingConfig()
    evaluation: EvaluationConfig = EvaluationConfig()

    @model_validator(mode="after")
    def _check(self) -> "Config":
        if self.decoding.replace_unk and self.model.decoder.type == "rnn" and self.model.decoder.attention == "none":
            raise ValueError("decoding.replace_unk reads the attention weights: it needs model.decoder.attention")
        if self.model.decoder.copy_attention and self.training.label_smoothing > 0:
            raise ValueError("label_smoothing is not defined over copy attention's per-sentence extended "
                             "vocabulary; set training.label_smoothing: 0 with model.decoder.copy_attention")
        m = self.training.early_stopping_metric
        if m not in ("loss", "ppl") and m not in self.evaluation.metrics:
            raise ValueError(
                f"training.early_stopping_metric '{m}' must be 'loss', 'ppl' or one of "
                f"evaluation.metrics {self.evaluation.metrics}")
        return self


# --------------------------------------------------------------------------- loading


def _key_lines(text: str) -> dict[tuple, int]:
    """Map each dotted key path of a YAML mapping to its 1-based line number."""
    lines: dict[tuple, int] = {}

    def walk(node, path):
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                p = path + (k.value,)
                lines[p] = k.start_mark.line + 1
                walk(v, p)

    try:
        walk(yaml.compose(text), ())
    except yaml.YAMLError:
        pass
    return lines


def _section_model(loc: tuple, root: type[BaseModel]) -> Optional[type[BaseModel]]:
    model: Any = root
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        if field is None or not (isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)):
            return None
        model = field.annotation
    return model


def _format_errors(err: ValidationError, source: str, lines: dict[tuple, int], root: type[BaseModel]) -> str:
    msgs = []
    for e in err.errors():
        loc = tuple(p for p in e["loc"] if isinstance(p, str))
        dotted = ".".join(loc)
        line = None
        for n in range(len(loc), 0, -1):
            if loc[:n] in lines:
                line = lines[loc[:n]]
                break
        where = f"{source}:{line}" if line else source
        if e["type"] == "extra_forbidden":
            section = _section_model(loc[:-1], root)
            hint = ""
            if section is not None:
                close = difflib.get_close_matches(loc[-1], list(section.model_fields), n=1, cutoff=0.5)
                hint = f" (did you mean '{close[0]}'?)" if close else f" (valid keys: {', '.join(section.model_fields)})"
            msgs.append(f"{where}: unknown key '{dotted}'{hint}")
        elif e["type"] == "missing":
            msgs.append(f"{where}: missing required key '{dotted}'")
        else:
            msg = e["msg"].removeprefix("Value error, ")
            key = f"'{dotted}'" if dotted else "config"
            msgs.append(f"{where}: {key}: {msg} (got {e.get('input')!r})" if dotted else f"{where}: {msg}")
    return "; ".join(msgs)


def parse_overrides(items: list[str]) -> list[tuple[list[str], Any]]:
    """Parse ``--set`` items ``a.b.c=value`` (value read as YAML) into (path, value).

    Raises:
        Seq2SeqError: an item without ``=`` or with an empty key.
    """
    out = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise Seq2SeqError(f"--set {item!r}: expected KEY=VALUE, e.g. training.max_steps=1000")
        try:
            parsed = yaml.safe_load(value) if value != "" else ""
        except yaml.YAMLError:
            parsed = value
        out.append((key.strip().split("."), parsed))
    return out


def apply_overrides(raw: dict, overrides: list[tuple[list[str], Any]]) -> dict:
    """Set each dotted path in the raw (unvalidated) config dict; returns ``raw``."""
    for path, value in overrides:
        node = raw
        for part in path[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[path[-1]] = value
    return raw


def config_from_dict(raw: Any, source: str = "config", text: str = "",
                     overrides: Optional[list[str]] = None, schema: type[BaseModel] = Config) -> Any:
    """Validate a raw config mapping.

    Args:
        raw: the parsed YAML mapping.
        source: a file name for messages.
        text: the YAML text, used to report line numbers.
        overrides: ``--set`` items applied before validation.
        schema: the root model: :class:`Config` (text tasks) or
            :class:`~seq2seq.forecast.config.ForecastConfig`.

    Raises:
        Seq2SeqError: naming the file, line and dotted key of each problem.
    """
    if not isinstance(raw, dict):
        raise Seq2SeqError(f"{source}: a config must be a YAML mapping of sections (data, model, training, ...)")
    parsed = parse_overrides(overrides or [])
    apply_overrides(raw, parsed)
    try:
        return schema.model_validate(raw)
    except ValidationError as err:
        lines = _key_lines(text)
        overridden = {tuple(p) for p, _ in parsed}
        msg = _format_errors(err, source, lines, schema)
        if any(tuple(e["loc"][:len(p)]) in overridden for e in err.errors() for p in overridden):
            msg += " (check the --set overrides)"
        raise Seq2SeqError(msg) from None


def load_config(path: str | Path, overrides: Optional[list[str]] = None, schema: Optional[type[BaseModel]] = None
                ) -> Any:
    """Read, override and validate a YAML config file.

    Args:
        path: the YAML file.
        overrides: ``--set`` items such as ``"training.max_steps=500"``.
        schema: the root model; by default chosen by the file's ``task`` key:
            ``forecast`` -> :class:`~seq2seq.forecast.config.ForecastConfig`,
            absent -> :class:`Config` (sequence-to-sequence text tasks).

    Returns:
        The validated :class:`Config` (or ``schema``).

    Raises:
        Seq2SeqError: missing file, YAML syntax error (with line), or schema errors.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise Seq2SeqError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise Seq2SeqError(f"{path}: cannot read config: {e}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise Seq2SeqError(f"{where}: invalid YAML: {getattr(e, 'problem', e)}") from None
    raw = raw if raw is not None else {}
    forecast = isinstance(raw, dict) and raw.get("task") == "forecast"
    if schema is Config and forecast:
        raise Seq2SeqError(f"{path}: a forecast config (task: forecast): text-task commands (--resume, sample, "
                           "Seq2Seq.load) do not apply; use seq2seq evaluate / predict or seq2seq.forecast.Forecaster")
    if schema is None:
        schema = Config
        if forecast:
            from seq2seq.forecast.config import ForecastConfig
            schema = ForecastConfig
    return config_from_dict(raw, str(path), text, overrides, schema)


def dump_config(config: Config, path: str | Path) -> None:
    """Write the resolved config as YAML (every key, defaults included)."""
    from seq2seq.checkpoint import atomic_write_text

    atomic_write_text(Path(path), yaml.safe_dump(config.model_dump(), sort_keys=False))
