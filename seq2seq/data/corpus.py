"""From a config's data section to vocabularies and tensorised datasets."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from seq2seq.config import DataConfig
from seq2seq.data.batching import ParallelDataset
from seq2seq.data.tokenizers import Tokenizer, build_tokenizer
from seq2seq.data.tsv import Example
from seq2seq.data.vocab import Vocabulary


@dataclass
class Split:
    """One split: its examples (text) and their ids as a :class:`ParallelDataset`.

    ``oovs``: with copy attention, each example's unknown source words (the ids
    past the target vocabulary name them); else None.
    """

    examples: list[Example]
    dataset: ParallelDataset
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
        """Build tokenizers and vocabularies from the training examples."""
        src_tok = build_tokenizer(cfg.src_tokenizer, cfg.lowercase)
        tgt_tok = build_tokenizer(cfg.tgt_tokenizer, cfg.lowercase)
        src_vocab = Vocabulary.build((src_tok.encode(e.source) for e in train), cfg.src_min_freq, cfg.src_max_size)
        tgt_vocab = Vocabulary.build((tgt_tok.encode(r) for e in train for r in e.references),
                                     cfg.tgt_min_freq, cfg.tgt_max_size)
        return cls(src_tok, tgt_tok, src_vocab, tgt_vocab, copy)

    @classmethod
    def load(cls, cfg: DataConfig, run_dir: Path, copy: bool = False) -> "Corpus":
        """Tokenizers from the config, vocabularies from ``run_dir`` (saved by :meth:`save`)."""
        return cls(build_tokenizer(cfg.src_tokenizer, cfg.lowercase), build_tokenizer(cfg.tgt_tokenizer, cfg.lowercase),
                   Vocabulary.load(run_dir / "src_vocab.txt"), Vocabulary.load(run_dir / "tgt_vocab.txt"), copy)

    def save(self, run_dir: Path) -> None:
        """Write ``src_vocab.txt`` and ``tgt_vocab.txt`` (one token a line)."""
        self.src_vocab.save(run_dir / "src_vocab.txt")
        self.tgt_vocab.save(run_dir / "tgt_vocab.txt")

    def encode_sources(self, sources: list[str]) -> list[list[int]]:
        """Source texts -> id lists (no specials)."""
        return [self.src_vocab.encode(self.src_tokenizer.encode(s)) for s in sources]

    def split(self, examples: list[Example], with_targets: bool = True,
              max_src_len: Optional[int] = None, max_tgt_len: Optional[int] = None) -> Split:
        """Encode examples (first reference as the target); optionally drop those
        longer than ``max_src_len`` / ``max_tgt_len`` tokens (training only)."""
        src = self.encode_sources([e.source for e in examples])
        tgt = [self.tgt_vocab.encode(self.tgt_tokenizer.encode(e.references[0])) for e in examples] \
            if with_targets else None
        if max_src_len or max_tgt_len:
            keep = [i for i in range(len(examples))
                    if (not max_src_len or len(src[i]) <= max_src_len)
                    and (not max_tgt_len or len(tgt[i]) <= max_tgt_len)]
            examples = [examples[i] for i in keep]
            src = [src[i] for i in keep]
            tgt = [tgt[i] for i in keep] if tgt is not None else None
        if not self.copy:
            return Split(examples, ParallelDataset(src, tgt, self.src_vocab, self.tgt_vocab))
        src_ext, oovs = zip(*(self.tgt_vocab.extend(self.src_tokenizer.encode(e.source)) for e in examples)) \
            if examples else ((), ())
        tgt_ext = [self.tgt_vocab.encode(self.tgt_tokenizer.encode(e.references[0]), o)
                   for e, o in zip(examples, oovs)] if with_targets else None
        return Split(examples, ParallelDataset(src, tgt, self.src_vocab, self.tgt_vocab, list(src_ext), tgt_ext),
                     list(oovs))

    def sources(self, texts: list[str]) -> Split:
        """A source-only split of ``texts`` (for prediction)."""
        return self.split([Example(t, [], i + 1) for i, t in enumerate(texts)], with_targets=False)

    def detokenize(self, ids: list[int], oovs: Optional[list[str]] = None) -> str:
        """Target ids (extended ids name ``oovs``, copy attention) -> text."""
        return self.tgt_tokenizer.decode(self.tgt_vocab.decode(ids, oovs))

