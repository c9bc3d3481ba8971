"""Dialog pairs from the English conversations of the ``chatterbot-corpus`` package.

The package's wheel holds YAML files (``chatterbot_corpus/data/english/*.yml``),
each a list of conversations, each a list of turns.  Every turn and the turn that
answers it become one ``prompt<TAB>response`` pair.

The package itself is never installed: it pins ``PyYAML<4``, which would
downgrade the PyYAML this project needs.  The recipe fetches the wheel alone
(``pip download --no-deps``) into a cache folder and reads the YAML files out of
the zip archive.

The split is by prompt: all responses to one prompt (compared case-insensitively)
fall in the same split, and validation and test files list them as several
references (``prompt<TAB>ref1<TAB>ref2...``).
"""

from __future__ import annotations

import random
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Optional

import yaml

from seq2seq.data.tsv import refuse_existing, write_splits
from seq2seq.errors import Seq2SeqError

PACKAGE = "chatterbot-corpus==1.3.3"
DATA_PREFIX = "chatterbot_corpus/data/english/"


def fetch_wheel(cache: str | Path) -> Path:
    """The ``chatterbot-corpus`` wheel in ``cache``, downloaded once with
    ``pip download --no-deps`` (its dependencies are not wanted).

    Raises:
        Seq2SeqError: pip could not download it.
    """
    cache = Path(cache)
    found = sorted(cache.glob("chatterbot_corpus-*.whl"))
    if found:
        return found[-1]
    cache.mkdir(parents=True, exist_ok=True)
    run = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                          "--disable-pip-version-check", "-q", "-d", str(cache), PACKAGE],
                         capture_output=True, text=True)
    found = sorted(cache.glob("chatterbot_corpus-*.whl"))
    if run.returncode != 0 or not found:
        last = run.stderr.strip().splitlines()[-1] if run.stderr.strip() else f"exit status {run.returncode}"
        raise Seq2SeqError(f"pip download --no-deps {PACKAGE} failed ({last}); download the wheel yourself "
                           "and pass --wheel FILE")
    return found[-1]


def _clean(turn) -> str:
    return " ".join(str(turn).split())


def read_conversations(wheel: str | Path) -> list[tuple[str, str]]:
    """(prompt, response) pairs of every English conversation in the wheel, in file order.

    Raises:
        Seq2SeqError: not a zip file, no English data in it, or a malformed YAML file
            (naming the file inside the archive).
    """
    try:
        archive = zipfile.ZipFile(wheel)
    except (OSError, zipfile.BadZipFile) as e:
        raise Seq2SeqError(f"{wheel}: not a chatterbot-corpus wheel ({e})") from None
    names = sorted(n for n in archive.namelist() if n.startswith(DATA_PREFIX) and n.endswith((".yml", ".yaml")))
    if not names:
        raise Seq2SeqError(f"{wheel}: no {DATA_PREFIX}*.yml files (not a chatterbot-corpus wheel?)")
    pairs = []
    for name in names:
        try:
            data = yaml.safe_load(archive.read(name).decode("utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            raise Seq2SeqError(f"{wheel}!{name}: cannot read: {e}") from None
        conversations = data.get("conversations") if isinstance(data, dict) else None
        if not isinstance(conversations, list):
            raise Seq2SeqError(f"{wheel}!{name}: no 'conversations' list")
        for conv in conversations:
            turns = [_clean(t) for t in conv] if isinstance(conv, list) else []
            pairs += [(a, b) for a, b in zip(turns, turns[1:]) if a and b]
    return pairs


def build_chatterbot_split(out: str | Path, cache: str | Path, wheel: Optional[str] = None,
                           valid_fraction: float = 0.05, test_fraction: float = 0.05, seed: int = 1234,
                           overwrite: bool = False) -> dict[str, int]:
    """Write ``train.tsv`` (one pair a line) and multi-reference ``valid.tsv`` /
    ``test.tsv`` under ``out``, split by prompt.

    Args:
        out: output folder.
        cache: where the wheel is downloaded.
        wheel: a chatterbot-corpus wheel already at hand (no download).
        valid_fraction, test_fraction: shares of distinct prompts held out.
        seed: the shuffle of prompts.
        overwrite: replace existing files.

    Returns:
        Lines per split.

    Raises:
        Seq2SeqError: bad fractions, existing files, or the wheel cannot be had or read.
    """
    if not (0 < valid_fraction < 1 and 0 < test_fraction < 1 and valid_fraction + test_fraction < 1):
        raise Seq2SeqError("valid and test fractions must be in (0, 1) and sum to less than 1")
    out = Path(out)
    refuse_existing([out / f"{n}.tsv" for n in ("train", "valid", "test")], overwrite)
    pairs = read_conversations(wheel or fetch_wheel(cache))
    responses: dict[str, list[tuple[str, str]]] = {}
    for prompt, response in pairs:
        responses.setdefault(prompt.lower(), []).append((prompt, response))
    prompts = sorted(responses)
    random.Random(seed).shuffle(prompts)
    n_test, n_valid = round(len(prompts) * test_fraction), round(len(prompts) * valid_fraction)
    held = {"test": prompts[:n_test], "valid": prompts[n_test:n_test + n_valid]}
    train = [f"{p}\t{r}" for key in sorted(prompts[n_test + n_valid:]) for p, r in responses[key]]
    parts = {"train": train}
    for name, keys in held.items():
        parts[name] = [responses[k][0][0] + "\t" + "\t".join(dict.fromkeys(r for _, r in responses[k]))
                       for k in sorted(keys)]
    write_splits(out, parts, overwrite)
    return {name: len(lines) for name, lines in parts.items()}
