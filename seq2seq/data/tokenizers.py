"""Tokenizers: text <-> list of token strings.

All tokenizers share one interface (:class:`Tokenizer`): ``char``, ``word`` and
``sentencepiece`` subwords (unigram language model, Kudo 2018; or BPE, Sennrich et
al. 2016, both through the ``sentencepiece`` library, Kudo & Richardson 2018).
A sentencepiece model is trained on the training data by ``seq2seq train`` and
saved in the run directory (see :class:`~seq2seq.data.corpus.Corpus`).
"""

from __future__ import annotations

from pathlib import Path

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
        return list(text.strip().replace(" ", SPACE))

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


class SentencePieceTokenizer(Tokenizer):
    """Subword pieces of a trained sentencepiece model (Kudo & Richardson 2018).

    A word-initial piece carries ``▁`` (U+2581) for the space before it, so
    :meth:`decode` is ``"".join(pieces)`` with ``▁`` turned back into spaces: the
    detokenised text, also for pieces the model never produced itself (a source
    piece copied by copy attention or by ``<unk>`` replacement).

    Args:
        model_proto: the serialised model (the bytes of a ``.model`` file).
        lowercase: lower-case text before encoding.

    Raises:
        Seq2SeqError: the bytes are not a sentencepiece model.
    """

    name = "sentencepiece"

    def __init__(self, model_proto: bytes, lowercase: bool = False):
        import sentencepiece as spm

        super().__init__(lowercase)
        self.model_proto = model_proto
        self.processor = spm.SentencePieceProcessor()
        try:
            self.processor.LoadFromSerializedProto(model_proto)
        except (RuntimeError, OSError) as e:
            raise Seq2SeqError(f"not a sentencepiece model: {e}") from None

    @classmethod
    def train(cls, texts: list[str], model_type: str = "unigram", vocab_size: int = 8000,
              character_coverage: float = 1.0, lowercase: bool = False, seed: int = 1) -> "SentencePieceTokenizer":
        """Train a model on ``texts`` (one sentence each), in memory.

        ``vocab_size`` is a soft limit (``hard_vocab_limit=False``): on a corpus too
        small for it, the model gets as many pieces as the data supports.  One
        training thread and a fixed seed keep the model the same from run to run.

        Args:
            texts: training sentences.
            model_type: ``unigram`` (Kudo 2018) or ``bpe`` (Sennrich et al. 2016).
            vocab_size: pieces in the model, specials included.
            character_coverage: share of characters the model must cover (rarer
                characters become ``<unk>``); 1.0 for alphabetic languages.
            lowercase: lower-case before training (and before every encoding).
            seed: sentencepiece's random seed.

        Raises:
            Seq2SeqError: sentencepiece refused the data or the settings.
        """
        import io

        import sentencepiece as spm

        out = io.BytesIO()
        sentences = [t.lower() if lowercase else t for t in texts]
        spm.set_random_generator_seed(seed)
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=iter(sentences), model_writer=out, model_type=model_type, vocab_size=vocab_size,
                character_coverage=character_coverage, hard_vocab_limit=False, num_threads=1,
                unk_surface="<unk>", minloglevel=2, shuffle_input_sentence=False)
        except RuntimeError as e:
            raise Seq2SeqError(f"sentencepiece training failed ({model_type}, vocab_size {vocab_size}): {e}") from None
        return cls(out.getvalue(), lowercase)

    @classmethod
    def load(cls, path: str | Path, lowercase: bool = False) -> "SentencePieceTokenizer":
        """Read a ``.model`` file written by :meth:`save`.

        Raises:
            Seq2SeqError: missing or unreadable file.
        """
        try:
            data = Path(path).read_bytes()
        except OSError as e:
            raise Seq2SeqError(f"{path}: cannot read sentencepiece model: {e.strerror or e}") from None
        try:
            return cls(data, lowercase)
        except Seq2SeqError as e:
            raise Seq2SeqError(f"{path}: {e}") from None

    def save(self, path: str | Path) -> None:
        """Write the model (``.model`` bytes, loadable by any sentencepiece tool), atomically."""
        from seq2seq.checkpoint import atomic_write_bytes

        atomic_write_bytes(Path(path), self.model_proto)

    def __len__(self) -> int:
        return self.processor.get_piece_size()

    def encode(self, text: str) -> list[str]:
        text = text.lower() if self.lowercase else text
        return self.processor.encode(text.strip(), out_type=str)

    def decode(self, tokens: list[str]) -> str:
        return "".join(tokens).replace(SPACE, " ").strip()


TOKENIZERS = {"char": CharTokenizer, "word": WordTokenizer}


def build_tokenizer(name: str, lowercase: bool = False) -> Tokenizer:
    """Create a tokenizer by name (``char`` or ``word``; a ``sentencepiece``
    tokenizer needs a model: :meth:`SentencePieceTokenizer.train` or ``.load``).

    Raises:
        Seq2SeqError: unknown name.
    """
    try:
        return TOKENIZERS[name](lowercase=lowercase)
    except KeyError:
        raise Seq2SeqError(f"unknown tokenizer '{name}' (choose from {', '.join(TOKENIZERS)}, or "
                           "sentencepiece through the data config)") from None
