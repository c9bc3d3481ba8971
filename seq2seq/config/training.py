"""The ``training`` section every task shares (optimizer, schedules, limits, validation,
checkpoints, precision, loggers) and scheduled sampling's schedule; each task's schema
adds its own keys and its early-stopping metrics (:mod:`seq2seq.config.text`,
:mod:`seq2seq.config.forecast`)."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, model_validator

from seq2seq.config.base import Section


class TeacherForcingConfig(Section):
    """What the decoder reads during training: the gold previous token (teacher
    forcing) or, with probability 1 - eps_i, the model's own prediction
    (scheduled sampling, Bengio et al. 2015).

    eps_i, the probability of feeding the gold token at update i (sec. 2.4):
    ``constant``: ``ratio`` (the seeds' teacher_forcing_ratio; 1 = full teacher
    forcing); ``linear``: ``max(end, start - (start - end) * i / steps)``;
    ``exponential``: ``k ** i`` (k < 1); ``inverse_sigmoid``: ``k / (k + exp(i / k))``
    (k >= 1).  A coin per target token decides.  The fed prediction is the argmax
    or a sample at ``temperature``.  ``mode``: ``two_pass`` predicts with a
    teacher-forced pass and trains a second pass on the mixed inputs (Duckworth et
    al. 2019), fast when the decoder runs a whole target in one call; ``exact``
    feeds each step's own prediction to the next step; ``auto`` picks two_pass for
    such decoders and exact otherwise.
    """

    schedule: Literal["constant", "linear", "exponential", "inverse_sigmoid"] = "constant"
    ratio: float = Field(1.0, ge=0.0, le=1.0)
    start: float = Field(1.0, ge=0.0, le=1.0)
    end: float = Field(0.0, ge=0.0, le=1.0)
    steps: int = Field(10000, ge=1)
    k: Optional[float] = Field(None, gt=0)
    sampling: Literal["argmax", "sample"] = "argmax"
    temperature: float = Field(1.0, gt=0)
    mode: Literal["auto", "two_pass", "exact"] = "auto"

    @model_validator(mode="after")
    def _check(self) -> "TeacherForcingConfig":
        if self.schedule == "exponential" and not (self.k is not None and self.k < 1):
            raise ValueError("the exponential schedule eps_i = k ** i needs 0 < k < 1 (e.g. k: 0.9999)")
        if self.schedule == "inverse_sigmoid" and not (self.k is not None and self.k >= 1):
            raise ValueError("the inverse_sigmoid schedule k / (k + exp(i / k)) needs k >= 1 (e.g. k: 2000)")
        return self


class DistributedConfig(Section):
    """Data-parallel training over the processes torchrun starts (PyTorch
    DistributedDataParallel, Li et al. 2020): ``backend`` ``auto`` is NCCL on CUDA and
    gloo on the CPU; ``timeout_minutes`` bounds how long a rank waits for the others
    in one collective (rank 0 validating, a slow checkpoint write).
    ``find_unused_parameters``: let DistributedDataParallel look for parameters that
    get no gradient in an update (a model with such parameters needs it; it costs a
    walk over the autograd graph per update).  Without torchrun (no ``WORLD_SIZE`` in
    the environment) training runs in one process and this section is unused.
    """

    backend: Literal["auto", "gloo", "nccl"] = "auto"
    timeout_minutes: float = Field(30.0, gt=0)
    find_unused_parameters: bool = False


class TrainingConfig(Section):
    """Optimisation, limits, validation, early stopping and checkpoints, for every task.

    ``weight_decay`` with adam or sgd is the L2 penalty of the seeds'
    ``lambda_l2_reg`` (gradient + lambda * w, i.e. loss + lambda/2 * sum w^2);
    with adamw it is decoupled (Loshchilov & Hutter 2019).
    ``accumulate_batches`` sums the gradients of that many batches per update
    (loss normalised by all their tokens or values).  ``scheduler``: ``plateau``
    (multiply by ``plateau_factor`` after ``plateau_patience`` validations without
    improvement), ``inverse_sqrt`` (linear warm-up over ``warmup_steps``, then
    ``lr * sqrt(warmup_steps / step)``; Vaswani et al. 2017), ``exponential``
    (``lr * decay_rate ** (step / decay_steps)`` after the warm-up), ``linear``
    (after the warm-up, down in a straight line to ``min_learning_rate`` when
    ``max_steps`` or ``max_minutes`` runs out; Li et al. 2020, "Budgeted Training");
    never below ``min_learning_rate``.  ``keep_checkpoints`` keeps the weights of the last N
    validations for ``seq2seq average``.  ``loggers``: ``metrics.jsonl`` is always
    written; ``tensorboard`` also writes TensorBoard event files to ``RUN/tensorboard``
    (``pip install 'seq2seq[tensorboard]'``).

    Under torchrun, ``batch_size`` is per rank (a global batch of ``batch_size``
    times the number of ranks) and the learning rate is used as given
    (:class:`DistributedConfig`).
    """

    batch_size: int = Field(64, ge=1)
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    learning_rate: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    momentum: float = Field(0.0, ge=0)
    clip_grad_norm: Optional[float] = Field(1.0, gt=0)
    accumulate_batches: int = Field(1, ge=1)
    scheduler: Literal["none", "plateau", "inverse_sqrt", "exponential", "linear"] = "plateau"
    plateau_factor: float = Field(0.5, gt=0, lt=1)
    plateau_patience: int = Field(2, ge=0)
    warmup_steps: int = Field(0, ge=0)
    decay_rate: float = Field(0.5, gt=0, le=1)
    decay_steps: int = Field(10000, ge=1)
    min_learning_rate: float = Field(1e-5, ge=0)
    teacher_forcing: TeacherForcingConfig = TeacherForcingConfig()
    keep_checkpoints: int = Field(0, ge=0)
    max_steps: Optional[int] = Field(None, ge=1)
    max_epochs: Optional[int] = Field(None, ge=1)
    max_minutes: Optional[float] = Field(None, gt=0)
    validate_every: int = Field(1000, ge=1)
    log_every: int = Field(100, ge=1)
    early_stopping_metric: str = "loss"
    patience: Optional[int] = Field(None, ge=1)
    num_threads: Optional[int] = Field(None, ge=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["fp32", "bf16"] = "fp32"
    progress_bar: bool = True
    loggers: list[Literal["tensorboard"]] = []
    distributed: DistributedConfig = DistributedConfig()

    @model_validator(mode="after")
    def _check(self) -> "TrainingConfig":
        if self.max_steps is None and self.max_epochs is None and self.max_minutes is None:
            raise ValueError("set at least one of max_steps, max_epochs, max_minutes")
        if self.scheduler == "inverse_sqrt" and self.warmup_steps < 1:
            raise ValueError("scheduler inverse_sqrt needs warmup_steps >= 1")
        if self.scheduler == "linear" and self.max_steps is None and self.max_minutes is None:
            raise ValueError("scheduler linear decays over the budget: set max_steps or max_minutes")
        return self
