"""Toy tasks for tests and newcomers: copy and reverse random symbol strings, and the
seeds' 48 word pairs (``man -> woman``), shipped with the package."""

from __future__ import annotations

import random
from pathlib import Path

from seq2seq.data.tsv import write_splits
from seq2seq.errors import Seq2SeqError

TASKS = ("copy", "reverse")


def toy_pairs(task: str, n: int, seed: int, symbols: str = "abcdefghij", min_len: int = 2,
              max_len: int = 8) -> list[tuple[str, str]]:
    """``n`` random (source, target) pairs of space-separated symbols.

    ``copy``: target = source; ``reverse``: target = source reversed.
    """
    if task not in TASKS:
        raise Seq2SeqError(f"unknown toy task {task!r} (choose from {', '.join(TASKS)})")
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        seq = [rng.choice(symbols) for _ in range(rng.randint(min_len, max_len))]
        tgt = seq if task == "copy" else seq[::-1]
        pairs.append((" ".join(seq), " ".join(tgt)))
    return pairs


def write_toy_task(task: str, out: str | Path, train: int = 3000, valid: int = 200, test: int = 200,
                   seed: int = 1, overwrite: bool = False) -> None:
    """Write ``train.tsv``, ``valid.tsv``, ``test.tsv`` of a toy task under ``out``.

    Raises:
        Seq2SeqError: unknown task, existing files without ``overwrite``, or an empty
            training split.
    """
    if train < 1 or valid < 0 or test < 0:
        raise Seq2SeqError(f"--train must be >= 1 (got {train}); valid and test sizes >= 0")
    sizes = (("train", train, seed), ("valid", valid, seed + 1), ("test", test, seed + 2))
    write_splits(out, {name: [f"{s_}\t{t}" for s_, t in toy_pairs(task, n, s)] for name, n, s in sizes}, overwrite)


WORD_PAIRS = Path(__file__).with_name("word_pairs.tsv")


def write_word_pairs(out: str | Path, overwrite: bool = False) -> Path:
    """Copy the packaged word pairs (``source<TAB>target``, 48 lines) to ``OUT/word_pairs.tsv``,
    the file ``configs/toy_word_pairs.yaml`` reads as ``examples/word_pairs.tsv``.

    Raises:
        Seq2SeqError: the file exists and ``overwrite`` is not set.
    """
    from seq2seq.checkpoint import atomic_write_bytes
    from seq2seq.data.tsv import refuse_existing

    path = Path(out) / "word_pairs.tsv"
    refuse_existing([path], overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, WORD_PAIRS.read_bytes())
    return path
