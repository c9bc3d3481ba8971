"""Vocabulary: token <-> id, with the specials ``<pad> <unk> <bos> <eos>``."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Iterable, Optional

from seq2seq.errors import Seq2SeqError

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
SPECIALS = (PAD, UNK, BOS, EOS)


class Vocabulary:
    """A fixed token list; ids 0-3 are ``<pad> <unk> <bos> <eos>``.

    Built from training data only (:meth:`build`), saved as plain text, one token
    a line in id order (:meth:`save`, :meth:`load`).
    """

    pad_id, unk_id, bos_id, eos_id = 0, 1, 2, 3

    def __init__(self, tokens: Iterable[str]):
        self.itos = list(tokens)
        if tuple(self.itos[:4]) != SPECIALS:
            raise Seq2SeqError(f"a vocabulary must start with {' '.join(SPECIALS)}")
        self.stoi = {t: i for i, t in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            raise Seq2SeqError("a vocabulary must not repeat a token")

    @classmethod
    def build(cls, sequences: Iterable[list[str]], min_freq: int = 1,
              max_size: Optional[int] = None) -> "Vocabulary":
        """Count tokens and keep those seen ``min_freq`` times or more.

        Args:
            sequences: tokenized training sentences.
            min_freq: minimum count to enter the vocabulary.
            max_size: keep at most this many non-special tokens (most frequent
                first; ties broken alphabetically, so the result is deterministic).
        """
        return cls.from_counts(Counter(t for seq in sequences for t in seq), min_freq, max_size)

    @classmethod
    def from_counts(cls, counts: Counter, min_freq: int = 1, max_size: Optional[int] = None) -> "Vocabulary":
        """The vocabulary of token ``counts`` (what :meth:`build` counts; a streaming
        preprocessor merges the counts of its workers), by the same rules."""
        kept = sorted((t for t, c in counts.items() if c >= min_freq and t not in SPECIALS),
                      key=lambda t: (-counts[t], t))
        if max_size is not None:
            kept = kept[:max_size]
        return cls(list(SPECIALS) + kept)

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, tokens: list[str], oovs: Optional[list[str]] = None) -> list[int]:
        """Tokens -> ids; unknown tokens map to ``unk_id``, or, when listed in
        ``oovs`` (a source's out-of-vocabulary words, see :meth:`extend`), to
        ``len(self) + position`` in the extended vocabulary of copy attention."""
        get, unk = self.stoi.get, self.unk_id
        if not oovs:
            return [get(t, unk) for t in tokens]
        extra = {t: len(self.itos) + i for i, t in enumerate(oovs)}
        return [get(t, extra.get(t, unk)) for t in tokens]

    def extend(self, tokens: list[str]) -> tuple[list[int], list[str]]:
        """A source's tokens in this (target) vocabulary extended by its own unknown
        words, for copy attention (See et al. 2017, sec. 2.2).

        Returns:
            ids: known tokens -> their id; the i-th distinct unknown -> len(self) + i.
            oovs: the distinct unknown tokens, in order of first appearance.
        """
        oovs: list[str] = []
        ids = []
        for t in tokens:
            i = self.stoi.get(t)
            if i is None:
                if t not in oovs:
                    oovs.append(t)
                i = len(self.itos) + oovs.index(t)
            ids.append(i)
        return ids, oovs

    def decode(self, ids: Iterable[int], oovs: Optional[list[str]] = None) -> list[str]:
        """Ids -> tokens, stopping at ``<eos>`` and dropping ``<pad>``/``<bos>``; ids
        past the vocabulary name the source words of ``oovs`` (copy attention)."""
        out = []
        size = len(self.itos)
        for i in ids:
            if i == self.eos_id:
                break
            if i >= size:
                out.append(oovs[i - size] if oovs and i - size < len(oovs) else self.itos[self.unk_id])
            elif i not in (self.pad_id, self.bos_id):
                out.append(self.itos[i])
        return out

    def save(self, path: str | Path) -> None:
        """Write one token a line (UTF-8), atomically."""
        from seq2seq.checkpoint import atomic_write_text

        atomic_write_text(Path(path), "\n".join(self.itos) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "Vocabulary":
        """Read a vocabulary written by :meth:`save`.

        Raises:
            Seq2SeqError: missing file or a file that does not start with the specials.
        """
        try:
            text = Path(path).read_bytes().decode("utf-8")    # not read_text: its newline translation
        except OSError as e:                                  # would split a "\r" token into two lines
            raise Seq2SeqError(f"{path}: cannot read vocabulary: {e.strerror or e}") from None
        except UnicodeDecodeError as e:
            raise Seq2SeqError(f"{path}: not UTF-8 at byte {e.start}") from None
        try:
            return cls(text.split("\n")[:-1] if text.endswith("\n") else text.split("\n"))
        except Seq2SeqError as e:
            raise Seq2SeqError(f"{path}: {e}") from None
