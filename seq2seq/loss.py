"""Masked cross-entropy for sequence targets, and the coverage loss."""

from __future__ import annotations

import torch
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


def coverage_loss(attention: Tensor, tgt_mask: Tensor) -> Tensor:
    """See et al. 2017's coverage loss, eq. 12: sum_t sum_j min(a_tj, c_tj), where
    c_t = sum_{t' < t} a_t' is the attention paid before step t; it penalises
    attending again to source positions already covered (repetition).

    Args:
        attention: (batch, tgt_len, src_len) weights a_t of the teacher-forced pass.
        tgt_mask: (batch, tgt_len) True on real target positions.

    Returns:
        Scalar: the loss summed over real target positions (divide by the token count).
    """
    coverage = attention.cumsum(1) - attention
    per_step = torch.minimum(attention, coverage).sum(-1)
    return per_step.masked_fill(~tgt_mask, 0.0).sum()
