"""Masked cross-entropy for sequence targets."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def sequence_cross_entropy(logits: Tensor, targets: Tensor, pad_id: int,
                           label_smoothing: float = 0.0) -> tuple[Tensor, int]:
    """Cross-entropy summed over real target tokens; padding contributes nothing.

    Args:
        logits: (batch, tgt_len, V) unnormalised scores.
        targets: (batch, tgt_len) gold ids, ``pad_id`` on padding.
        pad_id: ignored target id.
        label_smoothing: epsilon of label smoothing (Szegedy et al. 2016), 0 = off.

    Returns:
        loss_sum: scalar, the summed negative log-likelihood (nats); divide by the
            token count for the per-token loss the trainer optimises.
        num_tokens: real target tokens (``<eos>`` included).
    """
    if logits.shape[:2] != targets.shape:
        raise ValueError(f"logits {tuple(logits.shape)} do not match targets {tuple(targets.shape)}")
    loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=pad_id,
                           reduction="sum", label_smoothing=label_smoothing)
    return loss, int((targets != pad_id).sum())
