"""Atomic files and checkpoints (safetensors weights + JSON metadata, no pickle).

A checkpoint ``NAME`` is two files: ``NAME.safetensors`` (tensors: model weights,
optionally optimizer state and RNG state) and ``NAME.json`` (everything else).
Each file is written to a temporary name, flushed to disk and renamed over the
old one, so a crash leaves either the old or the new file, never half of one.
Both carry the same random ``checkpoint_id``; loading checks that they match, so a
crash between the two renames is detected instead of silently mixing states.
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from seq2seq.errors import Seq2SeqError


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same folder + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """UTF-8 text variant of :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode("utf-8"))


def save_checkpoint(stem: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Write ``stem.safetensors`` and ``stem.json`` atomically.

    Args:
        stem: path without suffix, e.g. ``run/checkpoints/last``.
        tensors: name -> tensor (moved to CPU, made contiguous).
        meta: JSON-serialisable metadata.
    """
    cid = uuid.uuid4().hex
    data = st_save({k: v.detach().cpu().contiguous() for k, v in tensors.items()},
                   metadata={"checkpoint_id": cid, "format": "seq2seq"})
    atomic_write_bytes(stem.with_suffix(".safetensors"), data)
    atomic_write_text(stem.with_suffix(".json"), json.dumps({**meta, "checkpoint_id": cid}, indent=1))


def load_checkpoint(stem: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint written by :func:`save_checkpoint` (no pickle involved).

    Returns:
        tensors (on CPU) and metadata.

    Raises:
        Seq2SeqError: missing or corrupt files, or files from two different saves.
    """
    st_path, js_path = stem.with_suffix(".safetensors"), stem.with_suffix(".json")
    for p in (st_path, js_path):
        if not p.exists():
            raise Seq2SeqError(f"{p}: checkpoint file not found")
    try:
        raw = st_path.read_bytes()
        tensors = st_load(raw)
        header_len = int.from_bytes(raw[:8], "little")
        header_meta = json.loads(raw[8:8 + header_len]).get("__metadata__", {})
    except (SafetensorError, ValueError, OSError) as e:
        raise Seq2SeqError(f"{st_path}: corrupt checkpoint ({e})") from None
    try:
        meta = json.loads(js_path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as e:
        raise Seq2SeqError(f"{js_path}: corrupt checkpoint metadata ({e})") from None
    if header_meta.get("checkpoint_id") != meta.get("checkpoint_id"):
        raise Seq2SeqError(f"{stem}: .safetensors and .json come from different saves "
                           "(interrupted write?); use the other checkpoint")
    return tensors, meta


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
    model.load_state_dict(model_state(tensors))
