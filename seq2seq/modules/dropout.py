"""Inverted dropout (Srivastava et al. 2014) with a cheaper CPU mask.

On CPU, ``torch.nn.functional.dropout`` draws one Mersenne-Twister number per
element through ``bernoulli_``; at the sizes of a training step here that
costs about as much as the LSTM cell it regularises.  :func:`dropout_mask`
draws 64 random bits per call of the generator and uses each 16-bit lane's
low 15 bits as one uniform draw, so the keep probability is exact to 1/32768.
It uses torch's default generator, so ``torch.manual_seed`` and a restored RNG
state reproduce it.  Other devices keep torch's fused dropout.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _check_probability(p: float) -> None:
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")


def dropout_mask(shape: torch.Size | tuple[int, ...], p: float, like: Tensor) -> Tensor:
    """A keep mask scaled for inverted dropout: 0 with probability p, else 1 / (1 - p).

    Args:
        shape: the mask's shape.
        p: drop probability in [0, 1).
        like: a tensor whose device and dtype the mask takes.

    Returns:
        (*shape) tensor of 0 and 1 / (1 - p).

    Raises:
        ValueError: p outside [0, 1).
    """
    _check_probability(p)
    if like.device.type != "cpu":
        return F.dropout(torch.ones(shape, device=like.device, dtype=like.dtype), p, True)
    n = math.prod(shape)
    lanes = torch.empty((n + 3) // 4, dtype=torch.int64).random_().view(torch.int16)[:n].view(shape)
    keep = lanes.bitwise_and_(0x7FFF) >= round(p * 32768)
    return keep.to(like.dtype).mul_(1.0 / (1.0 - p))


class Dropout(nn.Module):
    """Drop-in ``nn.Dropout`` whose CPU mask comes from :func:`dropout_mask`.

    Args:
        p: drop probability in [0, 1).

    Shapes: any; the output has the input's shape.
    """

    def __init__(self, p: float = 0.0):
        super().__init__()
        _check_probability(p)
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        if x.device.type != "cpu":
            return F.dropout(x, self.p, True)
        return x * dropout_mask(x.shape, self.p, x)

    def extra_repr(self) -> str:
        return f"p={self.p}"
