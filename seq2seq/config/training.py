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

    schedule: Literal["constant", "linear", "exponential", "inverse_sigmoid"] = Field(
        "constant", description="how eps_i, the probability of the gold previous token, falls over updates")
    ratio: float = Field(1.0, ge=0.0, le=1.0, description="constant: eps (1 = full teacher forcing, 0 = own "
                                                          "predictions only)")
    start: float = Field(1.0, ge=0.0, le=1.0, description="linear: eps at update 0")
    end: float = Field(0.0, ge=0.0, le=1.0, description="linear: eps after `steps` updates, and its floor")
    steps: int = Field(10000, ge=1, description="linear: updates from start to end")
    k: Optional[float] = Field(None, gt=0, description="exponential: k ** i (k < 1); inverse_sigmoid: "
                                                       "k / (k + exp(i / k)) (k >= 1)")
    sampling: Literal["argmax", "sample"] = Field("argmax", description="the fed prediction: argmax or a sample "
                                                                        "at temperature (text tasks)")
    temperature: float = Field(1.0, gt=0, description="softmax temperature of sampled fed predictions")
    mode: Literal["auto", "two_pass", "exact"] = Field(
        "auto", description="two_pass (Duckworth et al. 2019), exact (step by step) or auto (text tasks)")

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

    backend: Literal["auto", "gloo", "nccl"] = Field("auto", description="process group backend: auto (nccl on "
                                                                         "CUDA, gloo on CPU), gloo or nccl")
    timeout_minutes: float = Field(30.0, gt=0, description="minutes a rank waits for the others in one collective")
    find_unused_parameters: bool = Field(False, description="let DDP look for parameters without a gradient in "
                                                            "an update (slower)")


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
    (``pip install 'seq2seq[tensorboard]'``).  ``init_from``: a new run starts from the
    ``init_checkpoint`` weights of that run (fine-tuning; a distilled student started
    from a teacher, as in Furlanello et al. 2018's born-again networks) instead of a
    random initialisation; the optimizer, schedule and counters start afresh, and the
    model sizes and vocabularies must be the run's.  ``precision: auto`` picks bf16
    mixed precision where the device has native bfloat16 products and fp32 elsewhere
    (:func:`seq2seq.training.resolve_precision`; the log says which).  ``flush_denormal``
    sets the CPU's flush-to-zero / denormals-are-zero mode (``torch.set_flush_denormal``)
    before anything else of the run (:func:`seq2seq.training.flush_denormals`): as
    a model trains, gradients and intermediate values fall below float32's normal range,
    where x86 arithmetic takes a slow path.  On a 2-core Xeon the quick-start's fp32
    updates slowed from 15,000 to 5,000 target tokens/s over 10 minutes without it
    (docs/benchmarks.md, Training speed).

    Under torchrun, ``batch_size`` is per rank (a global batch of ``batch_size``
    times the number of ranks) and the learning rate is used as given
    (:class:`DistributedConfig`).
    """

    batch_size: int = Field(64, ge=1, description="batch size per rank: sentences or tokens (text, see "
                                                  "batch_type), windows (forecast)")
    optimizer: Literal["adam", "adamw", "sgd"] = Field("adam", description="adam (Kingma & Ba 2015), adamw "
                                                                           "(Loshchilov & Hutter 2019) or sgd")
    learning_rate: float = Field(1e-3, gt=0, description="initial learning rate (the peak, after any warm-up)")
    weight_decay: float = Field(0.0, ge=0, description="the L2 penalty lambda (adam, sgd); decoupled with adamw; "
                                                       "0 = off")
    momentum: float = Field(0.0, ge=0, description="momentum (sgd only)")
    clip_grad_norm: Optional[float] = Field(1.0, gt=0, description="clip the global gradient norm to this; "
                                                                   "None = no clipping")
    accumulate_batches: int = Field(1, ge=1, description="batches whose gradients are summed per update")
    scheduler: Literal["none", "plateau", "inverse_sqrt", "exponential", "linear"] = Field(
        "plateau", description="learning-rate schedule (none = constant)")
    plateau_factor: float = Field(0.5, gt=0, lt=1, description="plateau: multiply the learning rate by this "
                                                               "when the metric stalls")
    plateau_patience: int = Field(2, ge=0, description="plateau: validations without improvement tolerated "
                                                       "before the rate drops")
    warmup_steps: int = Field(0, ge=0, description="linear warm-up in updates (inverse_sqrt, exponential, linear); "
                                                   "0 = none")
    decay_rate: float = Field(0.5, gt=0, le=1, description="exponential: lr * decay_rate ** (step / decay_steps)")
    decay_steps: int = Field(10000, ge=1, description="exponential: updates per decay_rate factor")
    min_learning_rate: float = Field(1e-5, ge=0, description="floor of every schedule; linear: the rate when the "
                                                             "budget runs out")
    teacher_forcing: TeacherForcingConfig = Field(
        default_factory=TeacherForcingConfig,
        description="what the decoder reads in training: teacher forcing or scheduled sampling")
    init_from: Optional[str] = Field(None, description="a run directory whose weights a new run starts from "
                                                       "(same model sizes and vocabularies); None = random")
    init_checkpoint: Literal["best", "last", "averaged"] = Field("best", description="init_from's checkpoint")
    keep_checkpoints: int = Field(0, ge=0, description="keep the weights of the last N validations for "
                                                       "`seq2seq average` (0 = none)")
    max_steps: Optional[int] = Field(None, ge=1, description="stop after this many updates; None = no limit")
    max_epochs: Optional[int] = Field(None, ge=1, description="stop after this many passes over the training "
                                                              "data; None = no limit")
    max_minutes: Optional[float] = Field(None, gt=0, description="stop after this many wall-clock minutes "
                                                                 "(validation included); None = no limit")
    validate_every: int = Field(1000, ge=1, description="updates between validations")
    log_every: int = Field(100, ge=1, description="updates between training log lines (metrics.jsonl rows)")
    early_stopping_metric: str = Field("loss", description="validation metric that picks the best checkpoint "
                                                           "and drives patience and plateau")
    patience: Optional[int] = Field(None, ge=1, description="stop after this many validations without "
                                                            "improvement; None = never")
    num_threads: Optional[int] = Field(None, ge=1, description="torch CPU threads; None = torch's default")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto (CUDA if available), cpu or cuda")
    precision: Literal["fp32", "bf16", "auto"] = Field(
        "fp32", description="bf16: autocast, matrix products in bfloat16; auto: bf16 where the device multiplies "
                            "bfloat16 natively (a CUDA GPU that supports it, a CPU with avx512_bf16, amx_bf16 or "
                            "Arm bf16), fp32 elsewhere")
    flush_denormal: bool = Field(True, description="CPU: float32 values below 1.2e-38 (denormals) read and written "
                                                   "as 0 while training (flush-to-zero); false leaves the "
                                                   "process's setting as it is")
    progress_bar: bool = Field(True, description="tqdm bar on a terminal (plain log lines otherwise)")
    loggers: list[Literal["tensorboard"]] = Field(
        default_factory=list, description="loggers besides metrics.jsonl: tensorboard (RUN/tensorboard); [] = none")
    distributed: DistributedConfig = Field(default_factory=DistributedConfig,
                                           description="data-parallel settings, used only under torchrun")

    @model_validator(mode="after")
    def _check(self) -> "TrainingConfig":
        if self.max_steps is None and self.max_epochs is None and self.max_minutes is None:
            raise ValueError("set at least one of max_steps, max_epochs, max_minutes")
        if self.scheduler == "inverse_sqrt" and self.warmup_steps < 1:
            raise ValueError("scheduler inverse_sqrt needs warmup_steps >= 1")
        if self.scheduler == "linear" and self.max_steps is None and self.max_minutes is None:
            raise ValueError("scheduler linear decays over the budget: set max_steps or max_minutes")
        return self
