"""Stopping a run whose loss is no longer a finite number (NaN or inf).

A diverged update poisons the weights, and every later checkpoint would carry them.
The trainer hands each update's summed loss to :class:`FiniteLossGuard` (a tensor on
the training device: no synchronisation per update) and checks the collected
values before anything is logged or saved, so a NaN never reaches ``metrics.jsonl``
or ``checkpoints/{best,last}``: those keep the weights of the last validation before
the divergence.
"""

from __future__ import annotations

import math
from typing import Optional

import torch

from seq2seq.errors import Seq2SeqError


class FiniteLossGuard:
    """Remembers each update's loss until :meth:`check` looks at them all at once."""

    def __init__(self):
        self._pending: list[tuple[int, torch.Tensor, int]] = []
        self.last_finite: Optional[tuple[int, float]] = None        # (step, loss per unit)

    def add(self, step: int, loss_sum: torch.Tensor, count: int) -> None:
        """Record update ``step``'s summed loss (0-d tensor) over ``count`` tokens or values."""
        self._pending.append((step, loss_sum.detach() if torch.is_tensor(loss_sum) else torch.tensor(loss_sum),
                              count))

    def check(self) -> None:
        """Look at every loss recorded since the last check (one device synchronisation).

        Raises:
            Seq2SeqError: a loss is NaN or infinite, naming its step and the last
                finite loss before it.
        """
        if not self._pending:
            return
        values = torch.stack([v.float().reshape(()) for _, v, _ in self._pending]).cpu().tolist()
        for (step, _, count), value in zip(self._pending, values):
            if not math.isfinite(value):
                self._pending.clear()
                last = (f"the last finite loss was {self.last_finite[1]:.6g} at step {self.last_finite[0]}"
                        if self.last_finite else "no update had a finite loss")
                raise Seq2SeqError(
                    f"training diverged: the loss is {value} at step {step} ({last}); nothing was saved after it "
                    "(checkpoints keep the last validation before it); lower training.learning_rate, set "
                    "training.clip_grad_norm, or check the data")
            self.last_finite = (step, value / max(count, 1))
        self._pending.clear()


__all__ = ["FiniteLossGuard"]
