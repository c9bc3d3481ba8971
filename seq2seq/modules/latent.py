"""The Gaussian latent variable of a variational seq2seq (Bowman et al. 2016).

The encoder's context c gives the posterior q(z | x) = N(mu, diag(sigma^2)),
``[mu; log sigma^2] = W c + b``; training draws z = mu + sigma * eps (the
reparameterisation of Kingma & Welling 2014) and adds the KL divergence from the
prior N(0, I) to the reconstruction loss, weighted by an annealing factor that
grows from 0 (sec. 3.1: "KL cost annealing") so the decoder does not learn to
ignore z.  In eval mode z = mu, so reconstruction is deterministic; new
sequences come from z ~ N(0, I) (:meth:`EncoderDecoder.prior_state`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class GaussianLatent(nn.Module):
    """q(z | x) from the source context.

    Args:
        context_size: size M of the context c.
        latent_size: size L of z.
    """

    def __init__(self, context_size: int, latent_size: int):
        super().__init__()
        self.proj = nn.Linear(context_size, 2 * latent_size)
        self.latent_size = latent_size

    def forward(self, context: Tensor) -> tuple[Tensor, Tensor]:
        """Args:
            context: (batch, M).

        Returns:
            z: (batch, L), a sample in training, the mean in eval mode.
            kl: (batch,) KL(q(z | x) || N(0, I)) in nats,
            ``-1/2 sum_l (1 + log sigma_l^2 - mu_l^2 - sigma_l^2)`` (Kingma & Welling 2014, appendix B).
        """
        mu, logvar = self.proj(context).float().chunk(2, dim=-1)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu) if self.training else mu
        kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(-1)
        return z, kl


def kl_annealing(kind: str, step: int, steps: int) -> float:
    """The KL term's weight factor at update ``step`` (Bowman et al. 2016, sec. 3.1).

    Args:
        kind: ``constant`` (1), ``linear`` (``min(1, step / steps)``) or ``logistic``
            (``1 / (1 + exp(-10 (step / steps - 0.5)))``: 0.0067 at 0, 0.5 at steps / 2).
        step: updates done; steps: the annealing length.
    """
    if kind == "constant":
        return 1.0
    if kind == "linear":
        return min(1.0, step / steps)
    return 1.0 / (1.0 + math.exp(-10.0 * (step / steps - 0.5)))
