"""Atomic files and checkpoints (safetensors weights + JSON metadata, no pickle).

A checkpoint ``NAME`` is two files: ``NAME.safetensors`` (tensors: model weights,
optionally optimizer state and RNG state) and ``NAME.json`` (everything else).
Both files are first written in full to temporary names in the same folder and
flushed to disk; only then are they renamed over the old ones.  A crash or a full
disk while writing leaves the previous checkpoint as it was; a crash between the two
renames leaves a pair from two saves, which is detected: both files carry the same
random ``checkpoint_id``.  A reader that meets such a pair (a writer is replacing
the files right now) waits a moment and reads once more.

Format version 2 (written since this module knows it) also stores, in the
safetensors header, a SHA-256 over every tensor (name, dtype, shape, bytes) and the
JSON file: a truncated or damaged checkpoint is an error, never a silently different
model.  Version 1 checkpoints (no checksum) are still read.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Optional

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from seq2seq.errors import Seq2SeqError

FORMAT_VERSION = 2           # 2: + sha256 and format_version; 1: checkpoint_id only
TORN_RETRY_S = 0.5           # how long a reader waits before reading a mismatched pair again


def write_error(path: Path, e: OSError) -> Seq2SeqError:
    """The user's error for a failed write of ``path``: a full disk, no permission, other."""
    if e.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return Seq2SeqError(f"{path}: disk full while writing ({e.strerror or e}); free space and run again "
                            "(the previous file is unchanged)")
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return Seq2SeqError(f"{path}: cannot write ({e.strerror or e}); choose a folder you can write to")
    return Seq2SeqError(f"{path}: cannot write ({e.strerror or e})")


def _umask() -> int:
    """The process's umask (read by setting and restoring it once, at import)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()   # what open() would give a new file; mkstemp alone gives 0600


def _write_temp(path: Path, data: bytes) -> str:
    """Write ``data`` in full to a new temporary file beside ``path``, flushed to disk,
    with the permissions a plain ``open(path, "w")`` would give (not mkstemp's 0600).

    Returns:
        The temporary file's path (the caller renames it over ``path``).

    Raises:
        Seq2SeqError: the folder cannot be created or written, or the disk is full
            (the temporary file is removed).
    """
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        return tmp
    except BaseException as e:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise write_error(path, e) from None
        raise


def _replace(tmp: str, path: Path) -> None:
    """Rename a temporary file written by :func:`_write_temp` over ``path``."""
    try:
        os.replace(tmp, path)
    except OSError as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise write_error(path, e) from None


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same folder + rename).

    Raises:
        Seq2SeqError: no permission or a full disk (``path`` is then unchanged).
    """
    path = Path(path)
    _replace(_write_temp(path, data), path)


def atomic_write_text(path: Path, text: str) -> None:
    """UTF-8 text variant of :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode("utf-8"))


def checkpoint_digest(tensors: dict[str, torch.Tensor], meta_bytes: bytes) -> str:
    """SHA-256 (hex) over every tensor's name, dtype, shape and bytes (sorted by name)
    and the JSON metadata file's bytes: what a format 2 checkpoint stores to prove
    that neither file changed after it was written."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode("utf-8"))
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    h.update(meta_bytes)
    return h.hexdigest()


def save_checkpoint(stem: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Write ``stem.safetensors`` and ``stem.json``: both in full to temporary files,
    then renamed, so a failed write (a full disk) leaves the previous checkpoint intact.

    Args:
        stem: path without suffix, e.g. ``run/checkpoints/last``.
        tensors: name -> tensor (moved to CPU, made contiguous).
        meta: JSON-serialisable metadata.

    Raises:
        Seq2SeqError: the folder cannot be written or the disk is full.
    """
    stem = Path(stem)
    cid = uuid.uuid4().hex
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    meta_bytes = json.dumps({**meta, "checkpoint_id": cid, "format_version": FORMAT_VERSION},
                            indent=1).encode("utf-8")
    data = st_save(tensors, metadata={"checkpoint_id": cid, "format": "seq2seq",
                                      "format_version": str(FORMAT_VERSION),
                                      "sha256": checkpoint_digest(tensors, meta_bytes)})
    st_path, js_path = stem.with_suffix(".safetensors"), stem.with_suffix(".json")
    st_tmp = _write_temp(st_path, data)
    try:
        js_tmp = _write_temp(js_path, meta_bytes)
    except BaseException:
        os.unlink(st_tmp)
        raise
    _replace(st_tmp, st_path)
    _replace(js_tmp, js_path)


class _TornPair(Exception):
    """The two files of a checkpoint come from different saves."""


def _corrupt(path: Path, why: str) -> Seq2SeqError:
    return Seq2SeqError(f"{path}: corrupt checkpoint ({why}); use another checkpoint (--checkpoint last, "
                        "best or averaged) or retrain")


def _read_checkpoint(stem: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """One attempt of :func:`load_checkpoint`; raises :class:`_TornPair` for a mixed pair."""
    st_path, js_path = stem.with_suffix(".safetensors"), stem.with_suffix(".json")
    for p in (st_path, js_path):
        if not p.exists():
            raise Seq2SeqError(f"{p}: checkpoint file not found")
    try:
        raw, meta_bytes = st_path.read_bytes(), js_path.read_bytes()
    except OSError as e:
        raise Seq2SeqError(f"{stem}: cannot read checkpoint ({e.strerror or e})") from None
    try:
        header_len = int.from_bytes(raw[:8], "little")
        if len(raw) < 8 or header_len > len(raw) - 8:
            raise ValueError(f"{len(raw)} bytes; the header alone claims {header_len}")
        header = json.loads(raw[8:8 + header_len].decode("utf-8"))
        header_meta = header.get("__metadata__") if isinstance(header, dict) else None
        if not isinstance(header_meta, dict):
            raise ValueError("no seq2seq metadata in the header")
    except ValueError as e:                       # JSONDecodeError and UnicodeDecodeError included
        raise _corrupt(st_path, str(e)) from None
    if header_meta.get("format") != "seq2seq":
        raise _corrupt(st_path, "not written by seq2seq")
    legacy = set(header_meta) == {"checkpoint_id", "format"}            # format 1
    version = header_meta.get("format_version", "1" if legacy else None)
    if not (isinstance(version, str) and version.isdigit()):
        raise _corrupt(st_path, f"format_version {version!r}")
    if int(version) > FORMAT_VERSION:
        raise Seq2SeqError(f"{st_path}: checkpoint format {int(version)} is newer than this seq2seq reads "
                           f"(up to {FORMAT_VERSION}); upgrade seq2seq to load it")
    try:
        tensors = st_load(raw)
    except (SafetensorError, ValueError, KeyError, TypeError, RuntimeError, OverflowError) as e:
        raise _corrupt(st_path, str(e).splitlines()[0] if str(e) else type(e).__name__) from None
    try:
        meta = json.loads(meta_bytes.decode("utf-8"))
        if not isinstance(meta, dict):
            raise ValueError("not a JSON object")
    except ValueError as e:
        raise Seq2SeqError(f"{js_path}: corrupt checkpoint metadata ({e})") from None
    if header_meta.get("checkpoint_id") != meta.get("checkpoint_id"):
        raise _TornPair()
    if not legacy and header_meta.get("sha256") != checkpoint_digest(tensors, meta_bytes):
        raise _corrupt(stem, "checksum mismatch: a file was changed or damaged after it was written")
    return tensors, meta


def load_checkpoint(stem: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint written by :func:`save_checkpoint` (no pickle involved).

    A pair of files from two different saves (a writer is replacing them right
    now, or a crash fell between its two renames) is read once more after
    ``TORN_RETRY_S`` seconds before it is reported.

    Returns:
        tensors (on CPU) and metadata.

    Raises:
        Seq2SeqError: missing, truncated or damaged files (checksum), a checkpoint
            from a newer seq2seq, or files from two different saves.
    """
    stem = Path(stem)
    try:
        return _read_checkpoint(stem)
    except _TornPair:
        time.sleep(TORN_RETRY_S)
    try:
        return _read_checkpoint(stem)
    except _TornPair:
        raise Seq2SeqError(f"{stem}: .safetensors and .json come from different saves "
                           "(interrupted write?); use the other checkpoint") from None


def run_size_hints(run_dir: Path) -> dict[str, int]:
    """Sizes a run's weights follow, by the name to check: every integer of the
    ``model`` section of ``config.yaml`` (``model.encoder.hidden_size``: 64) and the
    token count of each vocabulary file (``src_vocab.txt``: 37).  Unreadable files
    give no hints."""
    import yaml

    hints: dict[str, int] = {}
    try:
        raw = yaml.safe_load((Path(run_dir) / "config.yaml").read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError):
        raw = None

    def walk(node, path):
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{path}.{k}")
        elif isinstance(node, int) and not isinstance(node, bool) and node > 0:
            hints[path] = node

    walk(raw.get("model") if isinstance(raw, dict) else None, "model")
    for name in ("src_vocab.txt", "tgt_vocab.txt"):
        try:
            hints[name] = len((Path(run_dir) / name).read_text(encoding="utf-8").splitlines())
        except (OSError, ValueError):
            pass
    return hints


def _shape_hint(name: str, expected: tuple, found: tuple, hints: dict[str, int]) -> str:
    """Which config key or vocabulary file most likely sets the size that differs."""
    part = name.split(".")[0]
    sizes = {a for a, b in zip(expected, found) if a != b} or set(expected)
    candidates = [k for k, v in hints.items() if any(s == v * m for s in sizes for m in (1, 2, 3, 4))]
    if "embed" in name or "generator" in name or "out" in name.split(".")[-2:-1]:
        vocab = [k for k in candidates if k.endswith("_vocab.txt")]
        candidates = vocab + [k for k in candidates if k not in vocab]
    same = [k for k in candidates if f".{part}." in k or k.startswith(part[:3])]
    ordered = same + [k for k in candidates if k not in same]
    if not ordered:
        return "the model section of config.yaml"
    return " or ".join(ordered[:2])


def load_model_state(model: torch.nn.Module, state: dict[str, torch.Tensor], where: str | Path,
                     hints: Optional[dict[str, int]] = None) -> None:
    """``model.load_state_dict(state)`` with errors a user can act on.

    Args:
        model: the model the run's config describes.
        state: name -> tensor, from a checkpoint.
        where: the checkpoint file, for messages.
        hints: sizes by config key / vocabulary file (:func:`run_size_hints`).

    Raises:
        Seq2SeqError: a tensor of another shape (naming the tensor, both shapes and
            the config key or vocabulary file to check), or missing / unexpected
            tensors (the checkpoint is from another kind of model).
    """
    own = model.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or unexpected:
        parts = ([f"{len(missing)} missing (e.g. '{missing[0]}')"] if missing else []) + \
                ([f"{len(unexpected)} unexpected (e.g. '{unexpected[0]}')"] if unexpected else [])
        raise Seq2SeqError(f"{where}: the weights do not fit the model that config.yaml describes: "
                           f"{', '.join(parts)}; was config.yaml edited, or the checkpoint copied from another "
                           "run? check the model section (cell, layers, attention, bridge, ...)")
    for name, tensor in own.items():
        found = tuple(state[name].shape)
        if found != tuple(tensor.shape):
            raise Seq2SeqError(
                f"{where}: tensor '{name}' has shape {found} in the checkpoint but {tuple(tensor.shape)} in the "
                f"model that config.yaml describes; check {_shape_hint(name, tuple(tensor.shape), found, hints or {})} "
                "(was config.yaml edited, or the checkpoint copied from another run?)")
    model.load_state_dict(state)


def model_state(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The model's ``state_dict`` inside a checkpoint's tensors (keys ``model.<name>``)."""
    return {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}


def split_optimizer_state(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Optimizer ``state_dict`` -> (tensors for safetensors, JSON-able rest)."""
    tensors, scalars = {}, {}
    for idx, entries in state["state"].items():
        for key, value in entries.items():
            if torch.is_tensor(value):
                tensors[f"optimizer.{idx}.{key}"] = value
            else:
                scalars[f"{idx}.{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def join_optimizer_state(tensors: dict[str, torch.Tensor], rest: dict) -> dict:
    """Inverse of :func:`split_optimizer_state`."""
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        if name.startswith("optimizer."):
            _, idx, key = name.split(".", 2)
            state.setdefault(int(idx), {})[key] = value
    for name, value in rest["scalars"].items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    return {"state": state, "param_groups": rest["param_groups"]}


def kept_checkpoints(folder: Path) -> list[Path]:
    """The ``step_*`` checkpoints that ``training.keep_checkpoints`` keeps in ``folder``,
    oldest first (as stems: the path without ``.safetensors`` / ``.json``)."""
    return [folder / stem for stem in sorted({f.stem for f in folder.glob("step_*.safetensors")})]


def average_checkpoints(stems: list[Path], out: Path) -> list[str]:
    """Average the model weights of several checkpoints into ``out`` (Vaswani et
    al. 2017, sec. 6.1 average the last checkpoints; Junczys-Dowmunt et al. 2016).

    Floating-point ``model.*`` tensors are averaged element-wise; the others
    (integer buffers) are taken from the last checkpoint.

    Args:
        stems: checkpoints to average (paths without suffix), oldest first.
        out: the stem to write, e.g. ``run/checkpoints/averaged``.

    Returns:
        The names of the averaged checkpoints.

    Raises:
        Seq2SeqError: no checkpoints, or checkpoints of different models.
    """
    if not stems:
        raise Seq2SeqError(f"{out.parent}: no checkpoints to average (set training.keep_checkpoints)")
    total: dict[str, torch.Tensor] = {}
    for stem in stems:
        tensors, _ = load_checkpoint(stem)
        model = {k: v for k, v in tensors.items() if k.startswith("model.")}
        if total and set(model) != set(total):
            raise Seq2SeqError(f"{stem}: holds different weights from {stems[0]}; cannot average them")
        for name, value in model.items():
            if value.is_floating_point():
                total[name] = total[name] + value.double() if name in total else value.double()
            else:
                total[name] = value
    averaged = {k: (v / len(stems)).float() if v.is_floating_point() else v for k, v in total.items()}
    save_checkpoint(out, averaged, {"averaged": [s.name for s in stems]})
    return [s.name for s in stems]


CHECKPOINTS = ("best", "last", "averaged")


def load_model_weights(model: torch.nn.Module, run_dir: Path, checkpoint: str = "best") -> None:
    """Load a run's ``checkpoints/<checkpoint>`` weights into ``model`` (``best`` falls
    back to ``last`` for a run trained without validation data).

    Raises:
        Seq2SeqError: an unknown checkpoint name, a missing or corrupt file, or weights
            that do not fit the model the run's config describes.
    """
    if checkpoint not in CHECKPOINTS:
        raise Seq2SeqError(f"checkpoint must be one of {', '.join(CHECKPOINTS)}, not {checkpoint!r}")
    stem = Path(run_dir) / "checkpoints" / checkpoint
    if checkpoint == "best" and not stem.with_suffix(".json").exists():
        stem = stem.with_name("last")                     # a run without validation has no best
    tensors, _ = load_checkpoint(stem)
    load_model_state(model, model_state(tensors), stem.with_suffix(".safetensors"), run_size_hints(run_dir))
