"""English-Spanish parallel text: the Bible, verse by verse, split by book.

The texts are public-domain SWORD modules that Debian packages:
``sword-text-web`` (World English Bible, module ``engWEB2015eb``) and
``sword-text-sparv`` (Reina-Valera 1909, module ``spaRV1909eb``).  The recipe
fetches the two ``.deb`` files with ``apt-get download`` and unpacks them with
``dpkg-deb -x`` into a cache folder (nothing is installed), reads the modules with
the ``pysword`` package, strips the OSIS markup (Strong's numbers, footnotes,
section headings), pairs verses with the same book, chapter and verse number,
and writes ``train.tsv`` / ``valid.tsv`` / ``test.tsv`` (``source<TAB>target``).

The split is by book: no verse of a validation or test book is in training.
The two modules use different versifications (NRSVA and KJV): where a chapter is
numbered differently, verses with the same number do not match.  Pairs whose
lengths in characters differ by more than a factor ``MAX_LENGTH_RATIO`` are left
out (most such shifted pairs, and the WEB's glossary appended to its last verse);
shifted pairs of similar lengths stay in as noise.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Iterable, Optional

from seq2seq.checkpoint import atomic_write_text
from seq2seq.data.tsv import refuse_existing, write_splits
from seq2seq.errors import Seq2SeqError

PACKAGES = {"engWEB2015eb": "sword-text-web", "spaRV1909eb": "sword-text-sparv"}
LANGUAGES = {"en": "engWEB2015eb", "es": "spaRV1909eb"}
VALID_BOOKS = ("Ruth", "Jonah", "Phil", "Titus")
TEST_BOOKS = ("Josh", "Eccl", "Gal", "1John")

MAX_LENGTH_RATIO = 2.5
Key = tuple[str, int, int]          # (OSIS book name, chapter, verse)


def fetch_modules(cache: str | Path, modules: Iterable[str] = tuple(PACKAGES)) -> Path:
    """Download and unpack the Debian packages of ``modules`` into ``cache``, once.

    Returns:
        The SWORD data folder (holding ``mods.d/`` and ``modules/``).

    Raises:
        Seq2SeqError: ``apt-get`` or ``dpkg-deb`` missing (not a Debian-like system),
            or a failed download.
    """
    cache = Path(cache)
    root = cache / "root"
    sword = root / "usr" / "share" / "sword"
    confs = {p.name.lower() for p in (sword / "mods.d").glob("*.conf")}
    missing = [m for m in modules if f"{m.lower()}.conf" not in confs]
    if not missing:
        return sword
    tools = [t for t in ("apt-get", "dpkg-deb") if shutil.which(t) is None]
    if tools:
        raise Seq2SeqError(f"the Bible recipe fetches the Debian packages {', '.join(PACKAGES[m] for m in missing)} "
                           f"with apt-get and dpkg-deb, but {' and '.join(tools)} is not installed; on Debian or "
                           "Ubuntu install apt and dpkg, elsewhere install the SWORD modules "
                           f"{', '.join(missing)} yourself and pass --modules DIR (the folder holding mods.d/)")
    debs = cache / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    packages = [PACKAGES[m] for m in missing]
    run = subprocess.run(["apt-get", "download", *packages], cwd=debs, capture_output=True, text=True)
    if run.returncode != 0:
        raise Seq2SeqError(f"apt-get download {' '.join(packages)} failed (run `apt-get update` first?): "
                           f"{run.stderr.strip().splitlines()[-1] if run.stderr.strip() else run.returncode}")
    for package in packages:
        for deb in sorted(debs.glob(f"{package}_*.deb")):
            run = subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], capture_output=True, text=True)
            if run.returncode != 0:
                raise Seq2SeqError(f"dpkg-deb -x {deb} failed: {run.stderr.strip()}")
    return sword


_NOTE = re.compile(r"<note\b.*?</note>", re.S)
_TITLE = re.compile(r"<title\b([^>]*)>(.*?)</title>", re.S)
_TAG = re.compile(r"<[^>]*>")
_SPACE_BEFORE = re.compile(r"\s+([,.;:!?)»”’])")
_SPACE_AFTER = re.compile(r"([(«“¿¡])\s+")
_SHOUTED = re.compile(r"^([¿¡«“\"]?)((?:[A-ZÁÉÍÓÚÑÜ]+ )?[A-ZÁÉÍÓÚÑÜ]{2,})\b")


def clean_osis(text: str) -> str:
    """Plain verse text from OSIS markup.

    Footnotes and non-canonical titles (section headings) are removed; canonical
    titles (psalm superscriptions) and the words inside ``<w>`` (Strong's
    numbers) are kept; spaces are normalised; a capitalised first word (the
    Reina-Valera prints a chapter's first word in capitals: ``EN el principio``,
    ``Y ACONTECIÓ``) is written ``En``, ``Y aconteció``.
    """
    text = _NOTE.sub(" ", text)
    text = _TITLE.sub(lambda m: f" {m.group(2)} " if 'canonical="true"' in m.group(1) else " ", text)
    text = _TAG.sub("", text)
    text = " ".join(text.split())
    text = _SPACE_AFTER.sub(r"\1", _SPACE_BEFORE.sub(r"\1", text))
    return _SHOUTED.sub(lambda m: m.group(1) + m.group(2).capitalize(), text)


def read_module(sword_dir: str | Path, module: str, books: Optional[Iterable[str]] = None) -> dict[Key, str]:
    """Every non-empty verse of a SWORD Bible module, cleaned (:func:`clean_osis`).

    Args:
        sword_dir: a SWORD data folder (holding ``mods.d/``).
        module: the module name, e.g. ``engWEB2015eb``.
        books: OSIS names of the books to read (default: all).

    Returns:
        ``{(OSIS book, chapter, verse): text}`` in canonical order.

    Raises:
        Seq2SeqError: the module is not in ``sword_dir``.
    """
    import functools

    from pysword.modules import SwordModules

    try:
        found = SwordModules(str(sword_dir))
        found.parse_modules()
        bible = found.get_bible_from_module(module)
    except (KeyError, FileNotFoundError, OSError) as e:
        raise Seq2SeqError(f"{sword_dir}: no SWORD module {module} ({e})") from None
    if hasattr(bible, "_decompressed_text"):
        # pysword decompresses a whole book's block for every verse it reads; keeping the
        # last blocks makes reading a Bible about 30x faster and changes no text.
        bible._decompressed_text = functools.lru_cache(maxsize=4)(bible._decompressed_text)
    wanted = set(books) if books is not None else None
    verses = {}
    for testament in bible.get_structure().get_books().values():
        for book in testament:
            if wanted is not None and book.osis_name not in wanted:
                continue
            for chapter, count in enumerate(book.chapter_lengths, start=1):
                for verse in range(1, count + 1):
                    text = clean_osis(bible.get(books=[book.name], chapters=[chapter], verses=[verse], clean=False))
                    if text:
                        verses[(book.osis_name, chapter, verse)] = text
    return verses


def align_verses(source: dict[Key, str], target: dict[Key, str], max_ratio: float = MAX_LENGTH_RATIO
                 ) -> list[tuple[Key, str, str]]:
    """Pairs of verses present in both texts, in the source's order, leaving out
    those whose lengths (characters) differ by more than a factor ``max_ratio``."""
    return [(k, s, target[k]) for k, s in source.items()
            if k in target and max(len(s), len(target[k])) <= max_ratio * min(len(s), len(target[k]))]


def split_by_book(pairs: list[tuple[Key, str, str]], valid_books: Iterable[str], test_books: Iterable[str]
                  ) -> dict[str, list[tuple[Key, str, str]]]:
    """Train / valid / test by book: a book's verses all go to one split.

    Raises:
        Seq2SeqError: a book in both valid and test, or a book with no verse pair.
    """
    valid, test = set(valid_books), set(test_books)
    if valid & test:
        raise Seq2SeqError(f"books in both --valid-books and --test-books: {', '.join(sorted(valid & test))}")
    books = {k[0] for k, _, _ in pairs}
    unknown = sorted((valid | test) - books)
    if unknown:
        raise Seq2SeqError(f"no verse pairs for book(s) {', '.join(unknown)}; use OSIS names such as "
                           f"{', '.join(sorted(books)[:6])}")
    parts: dict[str, list] = {"train": [], "valid": [], "test": []}
    for p in pairs:
        parts["valid" if p[0][0] in valid else "test" if p[0][0] in test else "train"].append(p)
    return parts


def build_bible_split(out: str | Path, cache: str | Path, direction: str = "en-es", modules_dir: Optional[str] = None,
                      valid_books: Iterable[str] = VALID_BOOKS, test_books: Iterable[str] = TEST_BOOKS,
                      overwrite: bool = False) -> dict[str, int]:
    """Write verse-aligned ``train/valid/test.tsv`` and ``books.json`` under ``out``.

    Args:
        out: output folder.
        cache: where the Debian packages are downloaded and unpacked.
        direction: ``en-es`` (English source, Spanish target) or ``es-en``.
        modules_dir: a SWORD data folder that already holds both modules (skips the download).
        valid_books, test_books: OSIS book names held out.
        overwrite: replace existing files.

    Returns:
        Verse pairs per split.

    Raises:
        Seq2SeqError: bad direction or books, existing files, or the modules cannot be fetched.
    """
    src_lang, _, tgt_lang = direction.partition("-")
    if src_lang not in LANGUAGES or tgt_lang not in LANGUAGES or src_lang == tgt_lang:
        raise Seq2SeqError(f"--direction must be en-es or es-en, not {direction!r}")
    out = Path(out)
    names = ("train", "valid", "test")
    refuse_existing([out / f"{n}.tsv" for n in names] + [out / "books.json"], overwrite)
    mods = (LANGUAGES[src_lang], LANGUAGES[tgt_lang])
    sword = Path(modules_dir) if modules_dir else fetch_modules(cache, mods)
    pairs = align_verses(read_module(sword, mods[0]), read_module(sword, mods[1]))
    parts = split_by_book(pairs, valid_books, test_books)
    write_splits(out, {n: [f"{s}\t{t}" for _, s, t in parts[n]] for n in names}, overwrite)
    books = {n: list(dict.fromkeys(k[0] for k, _, _ in parts[n])) for n in names}
    atomic_write_text(out / "books.json", json.dumps({"direction": direction, "modules": mods, "books": books},
                                                     indent=1) + "\n")
    return {n: len(parts[n]) for n in names}
