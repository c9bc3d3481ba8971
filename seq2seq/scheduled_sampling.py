"""Scheduled sampling (Bengio et al. 2015): train on a mix of gold and predicted inputs.

Full teacher forcing feeds the decoder the gold previous token y_{t-1}; at test
time it reads its own prediction instead, a mismatch Bengio et al. call exposure
bias.  Scheduled sampling tosses a coin per target token: with probability eps_i
(update i) the decoder reads the gold token, otherwise the model's prediction.
eps_i decays by a schedule (sec. 2.4), so training starts as teacher forcing.

Two ways to get the prediction:

- ``two_pass`` (Duckworth et al. 2019, "Parallel scheduled sampling"): a
  teacher-forced pass without gradients predicts every position at once; the
  mixed inputs then go through a second, ordinary teacher-forced pass.  Costs
  about one extra forward pass, and keeps the decoder's one-call fast path.
- ``exact``: step by step, each step reading the previous step's own prediction
  where the coin says so (Bengio et al.'s algorithm).  Costs a Python step loop,
  which decoders with input feeding or Bahdanau attention run anyway.

Predictions do not carry gradients in either mode (Bengio et al. sec. 2.4).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from seq2seq.config import TeacherForcingConfig
from seq2seq.models.encoder_decoder import Seq2SeqOutput


def teacher_forcing_probability(cfg: TeacherForcingConfig, step: int) -> float:
    """eps_i: the probability of feeding the gold token at update ``step`` (Bengio et al. 2015, sec. 2.4).

    Args:
        cfg: the schedule (``constant``, ``linear``, ``exponential``, ``inverse_sigmoid``).
        step: updates done so far, i >= 0.

    Returns:
        eps_i in [0, 1].
    """
    if cfg.schedule == "constant":
        return cfg.ratio
    if cfg.schedule == "linear":
        return max(cfg.end, cfg.start - (cfg.start - cfg.end) * step / cfg.steps)
    if cfg.schedule == "exponential":
        return cfg.k ** step
    return cfg.k / (cfg.k + math.exp(min(step / cfg.k, 700.0)))


def choose_tokens(logits: Tensor, sampling: str, temperature: float) -> Tensor:
    """The model's prediction fed back: argmax, or a sample at ``temperature``.

    Args:
        logits: (..., V).

    Returns:
        (...) token ids.
    """
    if sampling == "argmax":
        return logits.argmax(-1)
    probs = torch.softmax(logits.float().reshape(-1, logits.size(-1)) / temperature, dim=-1)
    return torch.multinomial(probs, 1).view(logits.shape[:-1])


def gold_coins(shape: torch.Size, eps: float, device) -> Tensor:
    """(batch, tgt_len) True where the gold token is fed; position 0 (``<bos>``) always."""
    coin = torch.rand(shape, device=device) < eps
    coin[:, 0] = True
    return coin


def scheduled_sampling_forward(model, batch, eps: float, cfg: TeacherForcingConfig):
    """The training pass with scheduled sampling at gold-token probability ``eps``.

    Args:
        model: an encoder-decoder (``start(batch)``, ``decoder(tgt_in, state)``, ``decoder.step``).
        batch: a training :class:`~seq2seq.data.batching.Batch`; tgt_in (B, T) starts with ``<bos>``.
        eps: probability of the gold token per position.
        cfg: ``sampling``, ``temperature`` and ``mode`` (``auto`` = two_pass when the
            decoder runs a whole target in one call, else exact).

    Returns:
        A :class:`~seq2seq.models.encoder_decoder.Seq2SeqOutput`: logits (B, T, V) for
        the targets ``batch.tgt_out`` (with eps = 1 the teacher-forced logits), the
        attention (B, T, S) of the trained pass and the KL term.
    """
    state, kl = model.start(batch)
    tgt_in = batch.tgt_in
    coin = gold_coins(tgt_in.shape, eps, tgt_in.device)
    mode = cfg.mode
    if mode == "auto":
        mode = "two_pass" if getattr(model.decoder, "can_run_parallel", False) else "exact"
    if mode == "two_pass":
        with torch.no_grad():
            first, _ = model.decoder(tgt_in, state)                      # first[:, t] predicts tgt_in[:, t+1]
        predicted = choose_tokens(first, cfg.sampling, cfg.temperature)
        model_in = torch.cat([tgt_in[:, :1], predicted[:, :-1]], dim=1)
        logits, attention = model.decoder(torch.where(coin, tgt_in, model_in), state, return_attention=True)
        return Seq2SeqOutput(logits, attention, kl)
    steps, weights = [], []
    prev = tgt_in[:, 0]
    for t in range(tgt_in.size(1)):
        logits_t, state, weights_t = model.decoder.step(prev, state)
        steps.append(logits_t)
        weights.append(weights_t)
        if t + 1 < tgt_in.size(1):
            predicted = choose_tokens(logits_t.detach(), cfg.sampling, cfg.temperature)
            prev = torch.where(coin[:, t + 1], tgt_in[:, t + 1], predicted)
    attention = torch.stack(weights, dim=1) if weights[0] is not None else None
    return Seq2SeqOutput(torch.stack(steps, dim=1), attention, kl)
