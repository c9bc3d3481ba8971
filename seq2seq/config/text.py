"""The schema of a text run (sequence-to-sequence over tokens: G2P, translation,
dialog, transduction); ``configs/g2p_cmudict.yaml`` is its commented reference."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, model_validator

from seq2seq.config.base import AttentionType, Cell, Section
from seq2seq.config.decoding import DecodeOptions, DecodingConfig
from seq2seq.config.training import TrainingConfig
from seq2seq.errors import Seq2SeqError


class SentencePieceConfig(Section):
    """Subword model(s) for ``src_tokenizer`` / ``tgt_tokenizer: sentencepiece``.

    Trained by ``seq2seq train`` on ``data.train`` (whatever file it names) and saved
    in the run directory: ``sentencepiece.model`` when ``joint`` (one model over
    sources and targets, both sides sentencepiece), else ``src_sentencepiece.model``
    / ``tgt_sentencepiece.model``.  ``model_type``: ``unigram`` (Kudo 2018) or
    ``bpe`` (Sennrich et al. 2016).  ``vocab_size``: pieces per model (a soft limit
    on small corpora).  ``character_coverage``: share of characters covered (1.0
    for alphabetic scripts, about 0.9995 for Chinese or Japanese).
    """

    model_type: Literal["unigram", "bpe"] = Field("unigram", description="unigram (Kudo 2018) or bpe "
                                                                         "(Sennrich et al. 2016)")
    vocab_size: int = Field(8000, ge=8, description="pieces per model (a soft limit on small corpora)")
    joint: bool = Field(True, description="one model over sources and targets (both tokenizers sentencepiece)")
    character_coverage: float = Field(1.0, gt=0, le=1, description="share of characters covered; rarer ones "
                                                                   "become <unk>")


class DataConfig(Section):
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

    ``train`` may also name a directory written by ``seq2seq preprocess`` (a
    memory-mapped corpus, :mod:`seq2seq.data.mapped`); ``max_bad_lines``: how many
    malformed lines of the training TSV (no tab, an empty side, invalid UTF-8) are
    skipped before one stops training or ``seq2seq preprocess``, naming its file and
    line; the skipped ones are listed, ``file:line: reason``, in the run directory's
    (and the preprocessed corpus's) ``bad_lines.txt``.
    """

    train: str = Field(..., description="training TSV (source<TAB>target) or a `seq2seq preprocess` directory")
    valid: Optional[str] = Field(None, description="validation TSV (source<TAB>ref1[<TAB>ref2...]); "
                                                   "None = no validation")
    test: Optional[str] = Field(None, description="test TSV (source<TAB>ref1[<TAB>ref2...]), scored by the "
                                                  "quick-start; None = none")
    src_tokenizer: Literal["char", "word", "sentencepiece"] = Field(
        "char", description="source tokens: characters, whitespace-separated words or sentencepiece subwords")
    tgt_tokenizer: Literal["char", "word", "sentencepiece"] = Field(
        "word", description="target tokens: characters, whitespace-separated words or sentencepiece subwords")
    sentencepiece: SentencePieceConfig = Field(default_factory=SentencePieceConfig,
                                               description="subword model(s) of a sentencepiece-tokenized side")
    lowercase: bool = Field(False, description="lower-case both sides before tokenizing (BLEU/chrF then ignore case)")
    src_min_freq: int = Field(1, ge=1, description="source tokens seen fewer times in training become <unk>")
    tgt_min_freq: int = Field(1, ge=1, description="target tokens seen fewer times in training become <unk>")
    src_max_size: Optional[int] = Field(None, ge=1, description="cap on the source vocabulary (most frequent kept); "
                                                                "None = no cap")
    tgt_max_size: Optional[int] = Field(None, ge=1, description="cap on the target vocabulary (most frequent kept); "
                                                                "None = no cap")
    max_src_len: Optional[int] = Field(None, ge=1, description="longest source in tokens (longer: see long_source); "
                                                               "None = no limit")
    long_source: Literal["drop", "truncate", "reject"] = Field(
        "drop", description="a source over max_src_len: drop (training: left out), truncate or reject (an error)")
    max_tgt_len: Optional[int] = Field(None, ge=1, description="drop training pairs with a longer target (tokens); "
                                                               "None = keep all")
    autoencoder: bool = Field(False, description="target = source (sequence autoencoder; first column only)")
    max_bad_lines: int = Field(0, ge=0, description="malformed training lines skipped (listed in bad_lines.txt) "
                                                    "before one stops the run")

    @model_validator(mode="after")
    def _check(self) -> "DataConfig":
        if self.autoencoder and self.src_tokenizer != self.tgt_tokenizer:
            raise ValueError("autoencoder (target = source) needs src_tokenizer == tgt_tokenizer")
        if self.sentencepiece.joint and "sentencepiece" in (self.src_tokenizer, self.tgt_tokenizer) \
                and self.src_tokenizer != self.tgt_tokenizer:
            raise ValueError("sentencepiece.joint needs src_tokenizer and tgt_tokenizer both 'sentencepiece'; "
                             "set data.sentencepiece.joint: false for a subword model on one side only")
        return self


class StackConfig(Section):
    """What an encoder and a decoder both have: an embedding of ``embedding_size``, then
    ``layers`` of ``cell`` (rnn, gru, lstm) with ``hidden_size`` units, or of a Transformer
    (``type: transformer``: ``hidden_size`` is d_model, ``heads``, ``ff_size`` default 4 x
    d_model), with ``dropout``."""

    type: Literal["rnn", "transformer"] = Field("rnn", description="rnn or transformer (Vaswani et al. 2017)")
    heads: int = Field(4, ge=1, description="attention heads (transformer only)")
    ff_size: Optional[int] = Field(None, ge=1, description="feed-forward width (transformer only); "
                                                           "None = 4 x hidden_size")
    cell: Cell = Field("lstm", description="rnn, gru or lstm (type rnn only)")
    embedding_size: int = Field(128, ge=1, description="token embedding width (a transformer projects it to "
                                                       "d_model when different)")
    hidden_size: int = Field(256, ge=1, description="units per layer (per direction); d_model for a transformer")
    layers: int = Field(1, ge=1, description="stacked layers")
    dropout: float = Field(0.1, ge=0.0, lt=1.0, description="dropout probability on embeddings, between layers "
                                                            "and on outputs")


class EncoderConfig(StackConfig):
    """Embedding + RNN encoder (Cho et al. 2014; Bahdanau et al. 2015, sec. 3.2), or a
    Transformer encoder (``type: transformer``, Vaswani et al. 2017: ``hidden_size`` is
    d_model, with ``heads`` and ``ff_size``; ``cell`` and ``bidirectional`` do not apply)."""

    bidirectional: bool = Field(True, description="read the source both ways, concatenating the states "
                                                  "(Bahdanau et al. 2015; rnn only)")


class DecoderConfig(StackConfig):
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

    attention: AttentionType = Field("luong_general", description="none, bahdanau (before the cell) or "
                                                                  "luong_dot, luong_general, luong_concat (after)")
    attention_size: Optional[int] = Field(None, ge=1, description="hidden size of additive scorers (bahdanau, "
                                                                  "luong_concat); None = hidden_size")
    input_feeding: bool = Field(False, description="feed o_{t-1} = tanh(W[h; c]) into the next step "
                                                   "(Luong et al. 2015, sec. 3.3)")
    context_every_step: bool = Field(False, description="feed the source context c into every step and the "
                                                        "readout (Cho et al. 2014)")
    feed_previous_output: bool = Field(True, description="the previous output y_{t-1} is part of the decoder input")
    copy_attention: bool = Field(False, description="pointer-generator: copy unknown source words "
                                                    "(See et al. 2017)")
    coverage: bool = Field(False, description="past attention enters each attention score, plus the coverage "
                                              "loss (See et al. 2017)")
    tie_embeddings: bool = Field(False, description="share the output layer with the target embedding "
                                                    "(needs embedding_size == hidden_size)")

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


class ModelConfig(Section):
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

    encoder: EncoderConfig = Field(default_factory=EncoderConfig, description="the encoder: RNN or Transformer")
    decoder: DecoderConfig = Field(default_factory=DecoderConfig,
                                   description="the decoder: RNN with attention, or Transformer")
    bridge: Literal["none", "last", "projection"] = Field(
        "projection", description="decoder start state: none (zeros), last (final encoder state) or projection")
    context: Literal["last", "mean", "max"] = Field(
        "last", description="source summary c for the bridge: last (final states), mean or max (pooled)")
    reverse_source: bool = Field(False, description="read the source backwards (Sutskever et al. 2014, sec. 3.3)")
    latent_size: Optional[int] = Field(None, ge=1, description="size of z in a variational seq2seq "
                                                               "(Bowman et al. 2016); None = off")

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


class TextTrainingConfig(TrainingConfig):
    """The shared ``training`` keys plus those of token targets: maximum likelihood per
    target token, with ``label_smoothing`` (Szegedy et al. 2016).  ``batch_type``:
    ``batch_size`` counts sentences or tokens.  ``coverage_loss_weight`` weighs See et
    al. 2017's coverage loss (with ``model.decoder.coverage``).  ``word_dropout``
    replaces decoder input tokens by ``<unk>`` at that rate (Bowman et al. 2016, sec.
    3.2).  With ``model.latent_size`` the KL term is weighted by ``kl_weight`` times
    the annealing factor: 1 (``constant``), ``min(1, i / kl_anneal_steps)``
    (``linear``) or ``1 / (1 + exp(-10 (i / kl_anneal_steps - 0.5)))`` (``logistic``,
    sec. 3.1).
    """

    batch_type: Literal["sentences", "tokens"] = Field(
        "sentences", description="batch_size counts sentences or padded tokens (rows x longest side)")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="epsilon of label smoothing; 0 = plain "
                                                                "cross-entropy")
    coverage_loss_weight: float = Field(1.0, ge=0, description="weight of the coverage loss (with "
                                                               "model.decoder.coverage)")
    word_dropout: float = Field(0.0, ge=0, lt=1, description="rate at which decoder input tokens become <unk>; "
                                                             "0 = off")
    kl_anneal: Literal["constant", "linear", "logistic"] = Field(
        "logistic", description="annealing of the KL weight of a variational model")
    kl_anneal_steps: int = Field(5000, ge=1, description="updates of the KL annealing (linear, logistic)")
    kl_weight: float = Field(1.0, ge=0, description="weight of the KL term (model.latent_size), times the "
                                                    "annealing factor")
    early_stopping_metric: Literal["loss", "ppl", "wer", "per", "accuracy", "bleu", "chrf"] = Field(
        "wer", description="picks the best checkpoint, drives patience and plateau: loss, ppl or evaluation.metrics")


class EvaluationConfig(Section):
    """Metrics computed at validation and by ``seq2seq evaluate``."""

    metrics: list[Literal["accuracy", "wer", "per", "bleu", "chrf"]] = Field(
        ["accuracy", "wer", "per"], description="accuracy, wer, per (G2P definitions), bleu, chrf (sacrebleu)")


class DistillationConfig(Section):
    """Knowledge distillation: a student trained from teacher runs (one, or an ensemble
    whose probabilities are mixed as in decoding).

    Token level (Hinton et al. 2015; Kim & Rush 2016, eq. 4-5): with ``weight`` alpha > 0
    the loss per target token is ``(1 - alpha) * CE(y, p_s) + alpha * T^2 * KL(q_T || p_s,T)``
    where ``q_T`` is the teachers' distribution at temperature T under teacher forcing on
    the same batch and ``p_s,T`` the student's; with ``top_k`` k > 0, ``q_T`` is kept on its
    k most probable tokens, computed once before training (Tan et al. 2019's top-K
    distillation; :class:`~seq2seq.teachers.TeacherTopK`).  Sequence level (Kim & Rush 2016, sec. 3.2):
    with ``sequence_level`` the teachers first beam-decode the training sources
    (``beam_size``, ``nbest`` hypotheses each) and the student trains on those targets,
    beside the reference pairs when ``references`` (``seq2seq distill`` does the decoding).
    A student uses its (first) teacher's vocabularies.
    """

    teachers: list[str] = Field(default_factory=list, description="teacher run directories (several: their "
                                                                  "ensemble); [] = no distillation")
    checkpoint: Literal["best", "last", "averaged"] = Field("best", description="the teachers' checkpoint")
    weight: float = Field(0.5, ge=0, le=1, description="alpha of token-level KD: (1 - alpha) CE + alpha T^2 KL; "
                                                       "0 = references only")
    temperature: float = Field(1.0, gt=0, description="softmax temperature T of teacher and student in the KL term")
    sequence_level: bool = Field(False, description="train on the teachers' beam outputs for the training sources "
                                                    "(Kim & Rush 2016)")
    beam_size: int = Field(5, ge=1, description="beam of the teachers' decoding (sequence level)")
    nbest: int = Field(1, ge=1, description="teacher hypotheses kept per source (sequence level)")
    references: bool = Field(True, description="keep the reference pairs beside the teachers' outputs "
                                               "(sequence level)")
    batch_size: int = Field(256, ge=1, description="sources per batch of the teachers' decoding (sequence level)")
    top_k: int = Field(0, ge=0, description="token level: 0 = the teachers run in every training step; k > 0 = "
                                            "their k most probable tokens per target position are computed once "
                                            "over the training set and read from there (top-K distillation)")
    top_k_file: Optional[str] = Field(None, description="where those top-k are stored (safetensors) and reused "
                                                        "when they match; seq2seq distill sets "
                                                        "RUN.teacher-topk.safetensors beside the run; null = "
                                                        "computed in memory at every start")

    @model_validator(mode="after")
    def _check(self) -> "DistillationConfig":
        if self.nbest > self.beam_size:
            raise ValueError(f"nbest ({self.nbest}) cannot exceed beam_size ({self.beam_size})")
        if self.teachers and self.weight == 0 and not self.sequence_level:
            raise ValueError("teachers are set but nothing is distilled: set weight > 0 (token level) "
                             "and/or sequence_level: true")
        return self


class Config(Section):
    """A whole text run: data, model, training, decoding, evaluation (and, for a
    student, distillation)."""

    task: Literal["text"] = Field("text", description="the schema: text (tokens to tokens)")
    name: str = Field("run", description="run name; the default run directory is runs/<name>")
    seed: int = Field(1, description="seeds weights, dropout and the data order")
    data: DataConfig = Field(..., description="the parallel data and how it becomes token ids")
    model: ModelConfig = Field(default_factory=ModelConfig, description="encoder, bridge and decoder")
    training: TextTrainingConfig = Field(TextTrainingConfig(max_steps=10000),
                                         description="optimisation, limits, validation and checkpoints")
    decoding: DecodingConfig = Field(default_factory=DecodingConfig,
                                     description="decoding for validation, evaluate and predict (flags override)")
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig,
                                         description="metrics computed at validation and by `seq2seq evaluate`")
    distillation: DistillationConfig = Field(default_factory=DistillationConfig,
                                             description="knowledge distillation from teacher runs (a student)")

    @model_validator(mode="after")
    def _check(self) -> "Config":
        if problem := _replace_unk_problem(self.decoding, self.model):
            raise ValueError(problem)
        if self.model.decoder.copy_attention and self.training.label_smoothing > 0:
            raise ValueError("label_smoothing is not defined over copy attention's per-sentence extended "
                             "vocabulary; set training.label_smoothing: 0 with model.decoder.copy_attention")
        if self.distillation.teachers and self.distillation.weight > 0 and self.model.decoder.copy_attention:
            raise ValueError("token-level distillation (distillation.weight > 0) compares distributions over "
                             "the target vocabulary; copy attention extends it per sentence: set "
                             "distillation.weight: 0 (sequence level only) or model.decoder.copy_attention: false")
        m = self.training.early_stopping_metric
        if m not in ("loss", "ppl") and m not in self.evaluation.metrics:
            raise ValueError(
                f"training.early_stopping_metric '{m}' must be 'loss', 'ppl' or one of "
                f"evaluation.metrics {self.evaluation.metrics}")
        return self



    def decode_options(self, beam: Optional[int] = None, **overrides) -> DecodeOptions:
        """The ``decoding`` section with overrides (:meth:`DecodeOptions.replace`), checked
        against this model.

        Raises:
            Seq2SeqError: an unknown option, a bad value or combination, or ``replace_unk``
                for a model without attention.
        """
        options = self.decoding.replace(beam=beam, **overrides)
        if problem := _replace_unk_problem(options, self.model):
            raise Seq2SeqError(problem)
        return options


def _replace_unk_problem(options: DecodeOptions, model: ModelConfig) -> Optional[str]:
    """Why ``replace_unk`` cannot apply to ``model`` (it reads attention weights), or None."""
    if options.replace_unk and model.decoder.type == "rnn" and model.decoder.attention == "none":
        return "replace_unk (--replace-unk) reads the attention weights: it needs model.decoder.attention"
    return None
