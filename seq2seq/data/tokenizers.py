"""Tokenizers: text <-> list of token strings.

All tokenizers share one interface (:class:`Tokenizer`), so a subword tokenizer
can join later without touching the rest of the pipeline.
"""

from __future__ import annotations

from seq2seq.errors import Seq2SeqError

SPACE = "\u2581"  # "▁": how the char tokenizer writes a space, so vocab files stay one token a line


class Tokenizer:
    """Splits text into tokens and joins tokens back into text."""

    name = "base"

    def __init__(self, lowercase: bool = False):
        self.lowercase = lowercase

    def encode(self, text: str) -> list[str]:
        """Text -> tokens."""
        raise NotImplementedError

    def decode(self, tokens: list[str]) -> str:
        """Tokens -> text (inverse of :meth:`encode` up to lower-casing)."""
        raise NotImplementedError


class CharTokenizer(Tokenizer):
    """One token per character; spaces become ``▁`` (U+2581)."""

    name = "char"

    def encode(self, text: str) -> list[str]:
        text = text.lower() if self.lowercase else text
        return [SPACE if c == " " else c for c in text.strip()]

    def decode(self, tokens: list[str]) -> str:
        return "".join(" " if t == SPACE else t for t in tokens)


class WordTokenizer(Tokenizer):
    """Whitespace-separated tokens (words, or phonemes in G2P targets)."""

    name = "word"

    def encode(self, text: str) -> list[str]:
        text = text.lower() if self.lowercase else text
        return text.split()

    def decode(self, tokens: list[str]) -> str:
        return " ".join(tokens)


TOKENIZERS = {"char": CharTokenizer, "word": WordTokenizer}


def build_tokenizer(name: str, lowercase: bool = False) -> Tokenizer:
    """Create a tokenizer by name (``char`` or ``word``).

    Raises:
        Seq2SeqError: unknown name.
    """
    try:
        return TOKENIZERS[name](lowercase=lowercase)
    except KeyError:
        raise Seq2SeqError(f"unknown tokenizer '{name}' (choose from {', '.join(TOKENIZERS)})") from None
