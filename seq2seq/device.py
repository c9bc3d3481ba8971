"""Where a run trains and decodes: the ``device`` option (``training.device``, ``--device``)."""

from __future__ import annotations

import torch

from seq2seq.errors import Seq2SeqError


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU.

    Raises:
        Seq2SeqError: ``cuda`` asked for but not available.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise Seq2SeqError("training.device is 'cuda' but this torch has no CUDA device; use 'auto' or 'cpu'")
    return torch.device(name)
