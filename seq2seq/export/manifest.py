"""``manifest.json`` of an exported directory: what it holds, and a SHA-256 per file.

Loading checks every listed file against its digest first, so a truncated copy, a graph
swapped for another or an edited vocabulary is named before anything is decoded.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from seq2seq.checkpoint import atomic_write_text
from seq2seq.errors import Seq2SeqError

MANIFEST = "manifest.json"
FORMAT = "seq2seq-onnx"
VERSION = 1


def require_onnx() -> None:
    """Raises:
        Seq2SeqError: onnx or onnxruntime is not installed (saying how to install them)."""
    import importlib.util

    missing = [m for m in ("onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:
        raise Seq2SeqError(f"ONNX export and decoding need {' and '.join(missing)}: pip install 'seq2seq[onnx]'")


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_manifest(folder: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Write ``folder/manifest.json`` (atomically): ``manifest`` plus ``files``, the
    SHA-256 of every other file in ``folder``.  Returns what was written."""
    files = {p.name: sha256(p) for p in sorted(folder.iterdir()) if p.is_file() and p.name != MANIFEST}
    manifest = {**manifest, "files": files}
    atomic_write_text(folder / MANIFEST, json.dumps(manifest, indent=1) + "\n")
    return manifest


def is_export(folder: Path) -> bool:
    """Whether ``folder`` is an exported directory (it has a manifest.json)."""
    return (Path(folder) / MANIFEST).is_file()


def read_manifest(folder: Path) -> dict[str, Any]:
    """Read and check ``folder/manifest.json`` and every file it lists.

    Raises:
        Seq2SeqError: an unreadable manifest or one of another format, a listed file
            that is missing, or one whose SHA-256 differs (naming the file).
    """
    require_onnx()
    path = Path(folder) / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise Seq2SeqError(f"{path}: unreadable manifest ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or not isinstance(
            manifest.get("files"), dict):
        raise Seq2SeqError(f"{path}: not a {FORMAT} manifest")
    if manifest.get("version") != VERSION:
        raise Seq2SeqError(f"{path}: manifest version {manifest.get('version')!r}; this seq2seq reads {VERSION} "
                           "(export the run again with this version)")
    for name, digest in manifest["files"].items():
        file = Path(folder) / name
        if not file.is_file():
            raise Seq2SeqError(f"{file}: missing (listed in {MANIFEST})")
        if sha256(file) != digest:
            raise Seq2SeqError(f"{file}: SHA-256 differs from {MANIFEST} (the file was changed or is corrupt; "
                               "export the run again)")
    return manifest
