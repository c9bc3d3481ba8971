"""Reading parallel TSV files with errors that name the file and line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

from seq2seq.errors import Seq2SeqError


@dataclass
class Example:
    """One source with one or more reference targets.

    Attributes:
        source: the source text.
        references: target texts (one for training files; possibly several for
            evaluation files, as in the G2P test set). Empty for source-only input.
        line: 1-based line number in its file.
    """

    source: str
    references: list[str]
    line: int


class BadLine(ValueError):
    """A malformed TSV line; the message says what is wrong (the caller adds file:line)."""


def parse_line(raw: bytes, n: int, multi_reference: bool = False, autoencoder: bool = False) -> Example | None:
    """One TSV line (without its ``\\n``) as an :class:`Example`, or None for a blank line.

    Args:
        raw: the line's bytes; n: its 1-based number; multi_reference, autoencoder: as
            in :func:`read_tsv`.

    Raises:
        BadLine: invalid UTF-8, no tab, an empty source or target, or extra columns
            in a single-reference file.
    """
    fields = _fields(raw, multi_reference, autoencoder)
    return None if fields is None else Example(fields[0], fields[1:], n)


def _fields(line: str | bytes, multi_reference: bool, autoencoder: bool) -> list[str] | None:
    """[source, ref1, ...] of one line (bytes are decoded as UTF-8), stripped; None for a
    blank line.

    Raises:
        BadLine: as :func:`parse_line`.
    """
    if isinstance(line, bytes):
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError as e:
            raise BadLine(f"invalid UTF-8 at byte {e.start} of the line") from None
    line = line.rstrip("\r")
    if not line.strip():
        return None
    fields = line.split("\t")
    if autoencoder:
        fields = [fields[0], fields[0]]
    if len(fields) < 2:
        raise BadLine("no tab between source and target (expected 'source<TAB>target')")
    if len(fields) > 2 and not multi_reference:
        raise BadLine(f"{len(fields)} columns; a training file has exactly 'source<TAB>target'")
    fields = [f.strip() for f in fields]
    if not fields[0]:
        raise BadLine("empty source")
    for i, r in enumerate(fields[1:], start=2):
        if not r:
            raise BadLine(f"empty target in column {i}")
    return fields


def parse_lines(raw: bytes, multi_reference: bool = False,
                autoencoder: bool = False) -> Iterator[tuple[int, list[str] | None, str]]:
    """Every line of a TSV chunk (whole lines), by the rules of :func:`parse_line`.

    The chunk is decoded at once and a well-formed ``source<TAB>target`` line takes a
    fast path; a chunk with invalid UTF-8 is decoded line by line, so the bad lines are
    named and the rest still read.  A final newline does not start another line.

    Args:
        raw: the bytes of whole lines; multi_reference, autoencoder: as in :func:`read_tsv`.

    Yields:
        (n, fields, error) for every non-blank line, n 1-based in ``raw``: fields is
        [source, ref1, ...] (stripped) and error "", or fields is None and error says what
        is wrong with the line.
    """
    try:
        lines: list = raw.decode("utf-8").split("\n")
    except UnicodeDecodeError:
        lines = raw.split(b"\n")
    if raw.endswith(b"\n"):
        lines.pop()
    fast = not autoencoder
    for n, line in enumerate(lines, start=1):
        if fast and isinstance(line, str):
            pair = line.split("\t")
            if len(pair) == 2 and (source := pair[0].strip()) and (target := pair[1].strip()):
                yield n, [source, target], ""                # a well-formed pair: what _fields gives
                continue
        try:
            fields = _fields(line, multi_reference, autoencoder)
        except BadLine as e:
            yield n, None, str(e)
            continue
        if fields is not None:
            yield n, fields, ""


def count_lines(raw: bytes) -> int:
    """The number of lines :func:`parse_lines` numbers in ``raw`` (a final newline ends the last)."""
    return raw.count(b"\n") + (0 if not raw or raw.endswith(b"\n") else 1)


def read_tsv(path: str | Path, multi_reference: bool = False, autoencoder: bool = False) -> list[Example]:
    """Read ``source<TAB>target`` lines (UTF-8).

    Blank lines are skipped.  With ``multi_reference`` every further column is
    another reference: ``source<TAB>ref1<TAB>ref2...``.  With ``autoencoder`` only
    the first column is read and it is also the reference (target = source).

    Args:
        path: the TSV file.
        multi_reference: allow more than one target column.
        autoencoder: target = source.

    Returns:
        The examples in file order.

    Raises:
        Seq2SeqError: ``path:line: ...`` for a missing file, invalid UTF-8, a line
            without a tab, an empty source or target, or extra columns in a
            single-reference file.
    """
    return read_tsv_skipping(path, None, multi_reference, autoencoder)[0]


def read_tsv_skipping(path: str | Path, max_bad_lines: Optional[int], multi_reference: bool = False,
                      autoencoder: bool = False) -> tuple[list[Example], list[str]]:
    """:func:`read_tsv` that skips up to ``max_bad_lines`` malformed lines (a training file's
    ``data.max_bad_lines``; None: none, and the error does not point at that key).

    Returns:
        (examples, skipped): the examples in file order, and one ``path:line: reason``
        for each malformed line left out.

    Raises:
        Seq2SeqError: what :func:`read_tsv` raises, naming the first malformed line once
            there are more than ``max_bad_lines`` of them.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise Seq2SeqError(f"{path}: file not found") from None
    except OSError as e:
        raise Seq2SeqError(f"{path}: cannot read: {e.strerror or e}") from None
    examples, skipped = [], []
    for n, fields, error in parse_lines(raw, multi_reference, autoencoder):
        if fields is None:
            skipped.append(f"{path}:{n}: {error}")
            if len(skipped) > (max_bad_lines or 0):
                raise Seq2SeqError(skipped[0] + (
                    "" if max_bad_lines is None else
                    " (set data.max_bad_lines to skip such lines and list them)" if max_bad_lines == 0 else
                    f" ({len(skipped)} malformed lines, more than data.max_bad_lines={max_bad_lines})"))
            continue
        examples.append(Example(fields[0], fields[1:], n))
    if not examples:
        raise Seq2SeqError(f"{path}: no examples (the file is empty)")
    return examples, skipped


BAD_LINE_POLICIES = ("error", "skip")


def decode_lines(data: bytes, where: str = "<stdin>", on_bad_line: str = "error") -> tuple[list[str], list[int]]:
    """Split input bytes into UTF-8 text lines, one source each (``predict``'s stdin).

    Lines end at ``\\n`` only (a trailing ``\\r`` is dropped), so line n of the input
    is always output line n; a final newline does not start another line.

    Args:
        data: the raw input.
        where: its name for messages (``<stdin>`` or a file).
        on_bad_line: ``error``: a line that is not valid UTF-8 stops everything,
            naming it; ``skip``: such a line becomes the empty source ``""``, whose
            answer is an empty output line.

    Returns:
        lines: the text of every line.
        skipped: 1-based numbers of the lines replaced by ``""`` (``skip``).

    Raises:
        Seq2SeqError: ``where:N: invalid UTF-8 at byte B of the line`` (``error``), or
            an unknown policy.
    """
    if on_bad_line not in BAD_LINE_POLICIES:
        raise Seq2SeqError(f"--on-bad-line must be one of {', '.join(BAD_LINE_POLICIES)}, not {on_bad_line!r}")
    pieces = data.split(b"\n")
    if pieces and pieces[-1] == b"":
        pieces.pop()
    lines, skipped = [], []
    for n, piece in enumerate(pieces, start=1):
        try:
            lines.append(piece.decode("utf-8").removesuffix("\r"))
        except UnicodeDecodeError as e:
            if on_bad_line == "error":
                raise Seq2SeqError(f"{where}:{n}: invalid UTF-8 at byte {e.start} of the line; nothing was "
                                   "decoded (pass --on-bad-line skip to answer such lines with empty ones)") from None
            lines.append("")
            skipped.append(n)
    return lines, skipped


def refuse_existing(paths: list[Path], overwrite: bool) -> None:
    """Nothing is overwritten silently: raise unless none of ``paths`` exists or ``overwrite``.

    Raises:
        Seq2SeqError: naming the first existing file.
    """
    existing = [str(p) for p in paths if Path(p).exists()]
    if existing and not overwrite:
        raise Seq2SeqError(f"{existing[0]}: exists; pass --overwrite to replace")


def write_splits(out: str | Path, parts: dict[str, list[str]], overwrite: bool = False) -> None:
    """Write ``out/<name>.tsv`` for each ``name: lines`` (one TSV line each), atomically.

    Raises:
        Seq2SeqError: a file exists and ``overwrite`` is False.
    """
    from seq2seq.checkpoint import atomic_write_text

    files = {name: Path(out) / f"{name}.tsv" for name in parts}
    refuse_existing(list(files.values()), overwrite)
    for name, lines in parts.items():
        atomic_write_text(files[name], "".join(line + "\n" for line in lines))
