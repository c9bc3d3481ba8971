"""Training criteria, apart from the models: each turns a model's output into the
summed objective to differentiate and the values to log.

- :class:`SequenceCriterion` (text): cross-entropy per target token (label smoothing
  optional), See et al. 2017's coverage loss, the annealed KL term of a variational
  seq2seq (Bowman et al. 2016).
- :class:`DistillationCriterion` (text, a student): a criterion's objective mixed with the
  token-level KL divergence to teachers' distributions (Hinton et al. 2015; Kim & Rush 2016).
- :class:`RegressionCriterion` (forecasting): MSE, MAE, Huber or the pinball loss of
  quantile forecasts.

The trainer divides the summed objective of an update by :meth:`count` summed over
its batches (target tokens, or target values), so accumulated batches give the
update of their union.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seq2seq.modules.latent import kl_annealing


@dataclass
class LossTerms:
    """One batch's contribution to an update.

    Attributes:
        objective: scalar, the summed objective to differentiate (before dividing by
            the update's count).
        loss: scalar, the summed main loss (nats or squared / absolute scaled units), detached.
        stats: name -> (sum, count) of auxiliary values, logged as sum / count over
            the logging window (e.g. ``kl``: nats summed over sentences).
    """

    objective: Tensor
    loss: Tensor
    stats: dict[str, tuple[float, int]] = field(default_factory=dict)


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


def targets_of(batch) -> Tensor:
    """The ids the loss scores: in the extended vocabulary with copy attention, else ``tgt_out``."""
    return batch.tgt_out_ext if batch.tgt_out_ext is not None else batch.tgt_out


class SequenceCriterion:
    """Maximum likelihood of the target sequence: ``-sum_t log p(y_t | y_<t, x)`` over
    real target tokens, plus ``coverage_weight`` times the coverage loss (See et al.
    2017, eq. 13) when the model has coverage, plus the KL term weighted by
    ``kl_weight * kl_annealing(step)`` for a variational model (Bowman et al. 2016, sec. 3.1).

    Args:
        pad_id: the padding id of the target vocabulary (never scored).
        label_smoothing: epsilon of label smoothing (Szegedy et al. 2016).
        coverage_weight: weight of the coverage loss; 0 = off.
        kl_weight: the KL term's weight (variational models).
        kl_anneal: its annealing schedule (:func:`~seq2seq.modules.latent.kl_annealing`).
        kl_anneal_steps: the annealing's length, in steps.
    """

    def __init__(self, pad_id: int, label_smoothing: float = 0.0, coverage_weight: float = 0.0,
                 kl_weight: float = 1.0, kl_anneal: str = "constant", kl_anneal_steps: int = 1):
        self.pad_id, self.label_smoothing, self.coverage_weight = pad_id, label_smoothing, coverage_weight
        self.kl_weight, self.kl_anneal, self.kl_anneal_steps = kl_weight, kl_anneal, kl_anneal_steps

    @property
    def needs_attention(self) -> bool:
        """Whether the model must return its attention (the coverage loss reads it)."""
        return self.coverage_weight > 0

    def count(self, batch) -> int:
        """Target tokens of ``batch`` (``<eos>`` included, padding not)."""
        return batch.num_tgt_tokens

    def kl_weight_at(self, step: int) -> float:
        """The KL term's weight at update ``step``."""
        return self.kl_weight * kl_annealing(self.kl_anneal, step, self.kl_anneal_steps)

    def __call__(self, output, batch, step: int) -> LossTerms:
        """Args:
            output: a :class:`~seq2seq.models.encoder_decoder.Seq2SeqOutput`.
            batch: the batch it was computed on (targets ``tgt_out`` (batch, tgt_len)).
            step: updates done so far (KL annealing).
        """
        loss_sum, _ = sequence_cross_entropy(output.logits.float(), targets_of(batch), self.pad_id,
                                             self.label_smoothing)
        objective, stats = loss_sum, {}
        if self.coverage_weight > 0 and output.attention is not None:
            objective = objective + self.coverage_weight * coverage_loss(output.attention.float(), batch.tgt_mask)
        if output.kl is not None:
            objective = objective + self.kl_weight_at(step) * output.kl
            stats["kl"] = (float(output.kl.detach()), batch.src.size(0))       # nats per sentence
        return LossTerms(objective, loss_sum.detach(), stats)


def distillation_kl(student_logits: Tensor, teacher_log_probs: Tensor, tgt_mask: Tensor,
                    temperature: float = 1.0, teacher_ids: Optional[Tensor] = None) -> Tensor:
    """Token-level distillation term, Hinton et al. 2015 (sec. 2) / Kim & Rush 2016 (eq. 5):
    ``T^2 * sum_t KL(q_t || p_t)`` over real target positions, where ``q_t`` is the teachers'
    distribution at temperature T and ``p_t = softmax(z_t / T)`` the student's.  The T^2 keeps
    the gradient's scale independent of T.  Up to the teachers' entropy (a constant) it is
    the cross-entropy of the student against the teachers' soft targets.  With
    ``teacher_ids``, ``q_t`` lives on those k tokens only (top-K distillation, Tan et al.
    2019: :class:`~seq2seq.teachers.TeacherTopK`) and ``p_t`` is still the student's full softmax.

    Args:
        student_logits: (batch, tgt_len, V) the student's unnormalised scores z.
        teacher_log_probs: (batch, tgt_len, V) log q, already at temperature T; or
            (batch, tgt_len, k) over ``teacher_ids``.
        tgt_mask: (batch, tgt_len) True at real target positions (``<eos>`` included).
        temperature: T > 0.
        teacher_ids: (batch, tgt_len, k) target-vocabulary ids of ``teacher_log_probs``, or None.

    Returns:
        Scalar: the summed term, in nats (divide by the token count for the per-token value).

    Raises:
        ValueError: shapes that do not match.
    """
    support = teacher_log_probs.shape if teacher_ids is None else teacher_ids.shape
    if (teacher_log_probs.shape != support or support[:2] != student_logits.shape[:2]
            or student_logits.shape[:2] != tgt_mask.shape or (teacher_ids is None and support != student_logits.shape)):
        raise ValueError(f"student {tuple(student_logits.shape)}, teacher {tuple(teacher_log_probs.shape)}"
                         f"{'' if teacher_ids is None else f' on ids {tuple(teacher_ids.shape)}'} and "
                         f"mask {tuple(tgt_mask.shape)} do not match")
    log_p = F.log_softmax(student_logits.float() / temperature, dim=-1)
    if teacher_ids is not None:
        log_p = log_p.gather(-1, teacher_ids)
    kl = F.kl_div(log_p, teacher_log_probs.float(), reduction="none", log_target=True).sum(-1)
    return temperature ** 2 * kl.masked_fill(~tgt_mask, 0.0).sum()


def teacher_log_probs(teacher: nn.Module, batch, temperature: float = 1.0) -> Tensor:
    """The teachers' per-step distribution at temperature T under teacher forcing on ``batch``:
    ``log q_t = log softmax(z_t / T)`` of one model, or for an
    :class:`~seq2seq.models.ensemble.Ensemble` the log of its members' tempered distributions
    mixed with its weights (as in its decoding).  Eval mode, no gradients.

    Args:
        teacher: an :class:`~seq2seq.models.encoder_decoder.EncoderDecoder` or an ensemble,
            on the batch's device.
        batch: a :class:`~seq2seq.data.batching.Batch` with targets.
        temperature: T > 0.

    Returns:
        (batch, tgt_len, V) float32 log-probabilities.
    """
    members = list(getattr(teacher, "members", [teacher]))
    with torch.no_grad():
        log_q = torch.stack([F.log_softmax(m(batch).logits.float() / temperature, dim=-1) for m in members])
        if len(members) == 1:
            return log_q[0]
        return torch.logsumexp(log_q + teacher.log_weights.view(-1, 1, 1, 1), dim=0)


class DistillationCriterion:
    """A student's criterion: ``(1 - alpha) * base + alpha * distillation_kl`` per batch, where
    the teachers' distributions come either from the teachers themselves (one model, or an
    :class:`~seq2seq.models.ensemble.Ensemble` whose tempered distributions are mixed with
    its weights) reading the same batch under teacher forcing, in eval mode and without
    gradients, inside the student's training step; or from their top-k computed once over
    the training set (a :class:`~seq2seq.teachers.TeacherTopK`, looked up by the batch's
    rows).  With alpha = 0 it is the base criterion exactly.  The logged ``loss`` stays the
    base's cross-entropy on the references (comparable with any run); ``kd`` logs the KL
    term per target token.

    Args:
        base: the student's own :class:`SequenceCriterion` (label smoothing, coverage, KL).
        teacher: an :class:`~seq2seq.models.encoder_decoder.EncoderDecoder` or an ensemble of
            them, sharing the student's vocabularies (moved to the batch's device on first
            use); or a :class:`~seq2seq.teachers.TeacherTopK` of the student's training set.
        weight: alpha in [0, 1].
        temperature: T > 0 (a TeacherTopK was computed at its own, recorded T).
    """

    def __init__(self, base: SequenceCriterion, teacher, weight: float, temperature: float = 1.0):
        self.base, self.teacher, self.weight, self.temperature = base, teacher, weight, temperature
        if isinstance(teacher, nn.Module):
            teacher.eval()

    @property
    def needs_attention(self) -> bool:
        return self.base.needs_attention

    def count(self, batch) -> int:
        return self.base.count(batch)

    def kl_weight_at(self, step: int) -> float:
        return self.base.kl_weight_at(step)

    def teacher_log_probs(self, batch) -> tuple[Tensor, Optional[Tensor]]:
        """The teachers' per-step distribution at temperature T: (batch, tgt_len, V) log q and
        None, or from a stored top-k (batch, tgt_len, k) log q~ and their ids."""
        if not isinstance(self.teacher, nn.Module):
            return self.teacher.lookup(batch)
        device = batch.src.device
        if next(self.teacher.parameters()).device != device:
            self.teacher.to(device)
        return teacher_log_probs(self.teacher, batch, self.temperature), None

    def __call__(self, output, batch, step: int) -> LossTerms:
        """Args: as :meth:`SequenceCriterion.__call__`."""
        terms = self.base(output, batch, step)
        if self.weight == 0:
            return terms
        mask = targets_of(batch) != self.base.pad_id
        log_q, ids = self.teacher_log_probs(batch)
        kd = distillation_kl(output.logits, log_q, mask, self.temperature, ids)
        objective = (1 - self.weight) * terms.objective + self.weight * kd
        return LossTerms(objective, terms.loss, {**terms.stats, "kd": (float(kd.detach()), int(mask.sum()))})


def regression_loss(pred: Tensor, target: Tensor, kind: str, quantiles: list[float], delta: float = 1.0) -> Tensor:
    """Mean loss over all entries.

    Args:
        pred: (B, H, V, Q) forecasts; target: (B, H, V).
        kind: ``mse``, ``mae`` or ``huber`` (ignored when there are several quantiles).
        quantiles: the Q levels; with Q > 1 the pinball loss
            ``max(tau (y - q), (tau - 1)(y - q))`` averaged over levels (Koenker & Bassett 1978).
        delta: Huber's threshold (scaled units).
    """
    if len(quantiles) > 1:
        tau = pred.new_tensor(quantiles)
        diff = target.unsqueeze(-1) - pred
        return torch.maximum(tau * diff, (tau - 1) * diff).mean()
    point = pred[..., 0]
    if kind == "mse":
        return nn.functional.mse_loss(point, target)
    if kind == "mae":
        return nn.functional.l1_loss(point, target)
    return nn.functional.huber_loss(point, target, delta=delta)


class RegressionCriterion:
    """:func:`regression_loss` of a batch of forecasts, summed over target values.

    Args:
        kind: ``mse``, ``mae`` or ``huber``; quantiles: the model's levels; delta: Huber's threshold.
    """

    def __init__(self, kind: str, quantiles: list[float], delta: float = 1.0):
        self.kind, self.quantiles, self.delta = kind, quantiles, delta

    needs_attention = False

    def count(self, batch) -> int:
        """Target values of a batch of windows: windows x horizon x value columns."""
        return batch.future.numel()

    def __call__(self, forecast: Tensor, batch, step: int) -> LossTerms:
        """Args:
            forecast: (B, H, V, Q) scaled forecasts; batch: its windows (future (B, H, V)).
        """
        loss = (regression_loss(forecast.float(), batch.future, self.kind, self.quantiles, self.delta)
                * batch.future.numel())
        return LossTerms(loss, loss.detach())
