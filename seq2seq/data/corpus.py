"""From a config's data section to vocabularies and tensorised datasets."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from seq2seq.config import DataConfig
from seq2seq.data.batching import ParallelDataset
from seq2seq.data.tokenizers import SentencePieceTokenizer, Tokenizer, build_tokenizer
from seq2seq.data.tsv import Example
from seq2seq.data.vocab import UNK, Vocabulary
from seq2seq.errors import Seq2SeqError
from seq2seq.search.common import Hypothesis

SPM_JOINT, SPM_SRC, SPM_TGT = "sentencepiece.model", "src_sentencepiece.model", "tgt_sentencepiece.model"


def _sentencepiece_files(cfg: DataConfig) -> dict[str, str]:
    """Which side uses which model file of the run directory."""
    sides = {side: name for side, name in (("src", cfg.src_tokenizer), ("tgt", cfg.tgt_tokenizer))
             if name == "sentencepiece"}
    if cfg.sentencepiece.joint:
        return {side: SPM_JOINT for side in sides}
    return {side: SPM_SRC if side == "src" else SPM_TGT for side in sides}


def train_tokenizers(cfg: DataConfig, train: list[Example]) -> tuple[Tokenizer, Tokenizer]:
    """The source and target tokenizers; sentencepiece models are trained on ``train``
    (jointly on both sides with ``sentencepiece.joint``)."""
    files = _sentencepiece_files(cfg)
    sp = cfg.sentencepiece
    texts = {"src": [e.source for e in train], "tgt": [r for e in train for r in e.references]}
    models: dict[str, Tokenizer] = {}
    for side in ("src", "tgt"):
        if side not in files:
            models[side] = build_tokenizer(cfg.src_tokenizer if side == "src" else cfg.tgt_tokenizer, cfg.lowercase)
        elif files[side] == SPM_JOINT and "joint" in models:
            models[side] = models["joint"]
        else:
            data = texts["src"] + texts["tgt"] if files[side] == SPM_JOINT else texts[side]
            models[side] = SentencePieceTokenizer.train(data, sp.model_type, sp.vocab_size, sp.character_coverage,
                                                        cfg.lowercase)
            if files[side] == SPM_JOINT:
                models["joint"] = models[side]
    return models["src"], models["tgt"]


def load_tokenizers(cfg: DataConfig, folder: Path) -> tuple[Tokenizer, Tokenizer]:
    """The source and target tokenizers of ``cfg``, sentencepiece models read from
    ``folder`` (a run directory or a preprocessed corpus).

    Raises:
        Seq2SeqError: a missing or unreadable sentencepiece model.
    """
    files = _sentencepiece_files(cfg)
    models = {name: SentencePieceTokenizer.load(Path(folder) / name, cfg.lowercase) for name in set(files.values())}
    toks = [models[files[side]] if side in files else build_tokenizer(name, cfg.lowercase)
            for side, name in (("src", cfg.src_tokenizer), ("tgt", cfg.tgt_tokenizer))]
    return toks[0], toks[1]


def save_tokenizers(src_tokenizer: Tokenizer, tgt_tokenizer: Tokenizer, folder: Path) -> None:
    """Write the sentencepiece model(s) of a pair of tokenizers into ``folder``:
    ``sentencepiece.model`` (one joint model) or ``src_`` / ``tgt_sentencepiece.model``."""
    for tok, name in ((src_tokenizer, SPM_SRC), (tgt_tokenizer, SPM_TGT)):
        if isinstance(tok, SentencePieceTokenizer):
            tok.save(Path(folder) / (SPM_JOINT if src_tokenizer is tgt_tokenizer else name))


def long_source_error(where: str, line: int, length: int, max_src_len: int) -> Seq2SeqError:
    """The error of a source over ``data.max_src_len`` under ``long_source: reject``."""
    return Seq2SeqError(f"{where}:{line}: source has {length} tokens, more than data.max_src_len={max_src_len} "
                        "(data.long_source: reject; set it to truncate or drop, or raise max_src_len)")


@dataclass
class Split:
    """One split: its examples (text) and their ids as a :class:`ParallelDataset`.

    ``source_tokens``: each example's source tokens as the model reads them (after
    any truncation): the columns of its attention.  ``oovs``: with copy attention,
    each example's unknown source words (the ids past the target vocabulary name
    them); else None.
    """

    examples: list[Example]
    dataset: ParallelDataset
    source_tokens: list[list[str]]
    oovs: Optional[list[list[str]]] = None


@dataclass
class Corpus:
    """Tokenizers and vocabularies of a run, and the splits they encode.

    Attributes:
        src_tokenizer, tgt_tokenizer: text <-> tokens.
        src_vocab, tgt_vocab: tokens <-> ids (built from training data only).
        copy: also encode sources and targets in the target vocabulary extended
            by each sentence's unknown source words (copy attention).
    """

    src_tokenizer: Tokenizer
    tgt_tokenizer: Tokenizer
    src_vocab: Vocabulary
    tgt_vocab: Vocabulary
    copy: bool = False

    @classmethod
    def from_config(cls, cfg: DataConfig, train: list[Example], copy: bool = False) -> "Corpus":
        """Build tokenizers (training sentencepiece models if asked) and vocabularies
        from the training examples.

        Raises:
            Seq2SeqError: sentencepiece could not be trained on the data.
        """
        src_tok, tgt_tok = train_tokenizers(cfg, train)
        src_vocab = Vocabulary.build((src_tok.encode(e.source) for e in train), cfg.src_min_freq, cfg.src_max_size)
        tgt_vocab = Vocabulary.build((tgt_tok.encode(r) for e in train for r in e.references),
                                     cfg.tgt_min_freq, cfg.tgt_max_size)
        return cls(src_tok, tgt_tok, src_vocab, tgt_vocab, copy)

    @classmethod
    def load(cls, cfg: DataConfig, run_dir: Path, copy: bool = False) -> "Corpus":
        """Tokenizers from the config (sentencepiece models from ``run_dir``),
        vocabularies from ``run_dir`` (all saved by :meth:`save`).

        Raises:
            Seq2SeqError: a missing or unreadable vocabulary or model file.
        """
        src_tok, tgt_tok = load_tokenizers(cfg, run_dir)
        return cls(src_tok, tgt_tok, Vocabulary.load(run_dir / "src_vocab.txt"),
                   Vocabulary.load(run_dir / "tgt_vocab.txt"), copy)

    def save(self, run_dir: Path) -> None:
        """Write ``src_vocab.txt`` and ``tgt_vocab.txt`` (one token a line) and the
        sentencepiece model(s): ``sentencepiece.model`` (joint) or
        ``src_sentencepiece.model`` / ``tgt_sentencepiece.model``."""
        self.src_vocab.save(run_dir / "src_vocab.txt")
        self.tgt_vocab.save(run_dir / "tgt_vocab.txt")
        save_tokenizers(self.src_tokenizer, self.tgt_tokenizer, run_dir)

    def split(self, examples: list[Example], with_targets: bool = True, max_src_len: Optional[int] = None,
              max_tgt_len: Optional[int] = None, long_source: str = "drop", where: str = "") -> Split:
        """Encode examples (first reference as the target).

        Args:
            examples: the examples.
            with_targets: encode targets too (False for prediction input).
            max_src_len: longest source in tokens (None: no limit).  A longer source is
                handled by ``long_source``: ``drop`` (the example is left out),
                ``truncate`` (its first ``max_src_len`` tokens are kept) or ``reject``.
            max_tgt_len: examples with longer targets are left out (training only).
            long_source: the policy above (``data.long_source``).
            where: the file name for error messages.

        Raises:
            Seq2SeqError: ``where:line: ...`` for a long source under ``reject``.
        """
        src_tokens = [self.src_tokenizer.encode(e.source) for e in examples]
        keep_src = [True] * len(examples)
        if max_src_len:
            too_long = [len(t) > max_src_len for t in src_tokens]
            if long_source == "reject" and any(too_long):
                i = too_long.index(True)
                raise long_source_error(where or "input", examples[i].line, len(src_tokens[i]), max_src_len)
            if long_source == "truncate":
                src_tokens = [t[:max_src_len] for t in src_tokens]
            else:
                keep_src = [not x for x in too_long]
        tgt_tokens = [self.tgt_tokenizer.encode(e.references[0]) for e in examples] if with_targets else None
        keep = [i for i in range(len(examples)) if keep_src[i]
                and (not max_tgt_len or tgt_tokens is None or len(tgt_tokens[i]) <= max_tgt_len)]
        if len(keep) < len(examples):
            examples = [examples[i] for i in keep]
            src_tokens = [src_tokens[i] for i in keep]
            tgt_tokens = [tgt_tokens[i] for i in keep] if tgt_tokens is not None else None
        src = [self.src_vocab.encode(t) for t in src_tokens]
        tgt = [self.tgt_vocab.encode(t) for t in tgt_tokens] if tgt_tokens is not None else None
        if not self.copy:
            return Split(examples, ParallelDataset(src, tgt, self.src_vocab, self.tgt_vocab), src_tokens)
        src_ext, oovs = zip(*(self.tgt_vocab.extend(t) for t in src_tokens)) if examples else ((), ())
        tgt_ext = [self.tgt_vocab.encode(t, o) for t, o in zip(tgt_tokens, oovs)] if tgt_tokens is not None else None
        return Split(examples, ParallelDataset(src, tgt, self.src_vocab, self.tgt_vocab, list(src_ext), tgt_ext),
                     src_tokens, list(oovs))

    def sources(self, texts: list[str], lines: Optional[list[int]] = None, max_src_len: Optional[int] = None,
                long_source: str = "truncate", where: str = "input") -> Split:
        """A source-only split of ``texts`` (for prediction); ``lines`` are their
        1-based input line numbers (default 1, 2, ...) for error messages; a source
        longer than ``max_src_len`` is truncated or rejected (see :meth:`split`)."""
        lines = lines or list(range(1, len(texts) + 1))
        return self.split([Example(t, [], n) for t, n in zip(texts, lines)], with_targets=False,
                          max_src_len=max_src_len, long_source=long_source, where=where)

    def output_tokens(self, hyp: Hypothesis, source_tokens: list[str], oovs: Optional[list[str]] = None,
                      replace_unk: bool = False) -> list[str]:
        """A hypothesis's target tokens, optionally with each ``<unk>`` replaced by the
        source token it attends to most (Luong et al. 2015, "Addressing the rare word
        problem", with the alignment read from the attention weights as in Jean et
        al. 2015, sec. 3.2).  With copy attention, ids past the vocabulary already
        name source words (``oovs``); only a generated ``<unk>`` is replaced.

        Args:
            hyp: the hypothesis; ``hyp.attention`` (steps, src_len) is needed for
                ``replace_unk``.
            source_tokens: (src_len) the source tokens the attention's columns refer to.
            oovs: the source's unknown words (copy attention's extended ids).
            replace_unk: replace ``<unk>`` outputs.

        Raises:
            Seq2SeqError: ``replace_unk`` on a hypothesis without attention.
        """
        v = self.tgt_vocab
        tokens = v.decode(hyp.tokens, oovs)
        if not replace_unk or UNK not in tokens:
            return tokens
        if hyp.attention is None:
            raise Seq2SeqError("replacing <unk> needs attention weights; this model has no attention "
                               "(model.decoder.attention: none)")
        kept = [j for j, i in enumerate(hyp.tokens) if i not in (v.pad_id, v.bos_id)][:len(tokens)]
        aligned = hyp.attention[kept].argmax(-1).tolist()           # source position per output token
        return [source_tokens[k] if t == UNK else t for t, k in zip(tokens, aligned)]

    def detokenize(self, ids: list[int], oovs: Optional[list[str]] = None) -> str:
        """Target ids (extended ids name ``oovs``, copy attention) -> text."""
        return self.tgt_tokenizer.decode(self.tgt_vocab.decode(ids, oovs))

