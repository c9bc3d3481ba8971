"""Training: ONE loop for every task (:mod:`seq2seq.tasks`): limits, logging,
bf16 autocast, gradient accumulation and clipping, schedules, validation, early
stopping, checkpoints and exact resume.

A run directory holds everything about one run::

    RUN/config.yaml          the resolved config (every key)
    RUN/src_vocab.txt ...    what the task saves (vocabularies; scalers.json for forecasts)
    RUN/metrics.jsonl        one JSON object per log line (train) or validation (valid)
    RUN/tensorboard/         event files, with ``training.loggers: [tensorboard]``
    RUN/curves.png           training / validation curves
    RUN/training.json        how the run ended (steps, seconds, why, best score)
    RUN/checkpoints/best.*   best weights by the early-stopping metric
    RUN/checkpoints/last.*   weights + optimizer + scheduler + RNG + data position
    RUN/.lock                held by the one process writing the run (:mod:`seq2seq.run_lock`)

Under torchrun every rank runs this loop (:mod:`seq2seq.distributed`): each update
takes one global batch of ``batch_size x world_size`` and each rank its share;
DistributedDataParallel averages the gradients; rank 0 alone validates (and
broadcasts the results, so the schedule and early stopping agree), writes and holds
the lock; every rank stops at the same step because the clock, the losses and the
validation results they decide by are the same everywhere.

The decoder reads the gold previous output (teacher forcing, Williams & Zipser
1989; Sutskever et al. 2014) or, under ``training.teacher_forcing``'s schedule, its
own prediction at rate 1 - eps_i (scheduled sampling, Bengio et al. 2015).  The task's
criterion (:mod:`seq2seq.criteria`) turns the model's output into the loss; the
trainer never looks inside the model.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from seq2seq.checkpoint import (atomic_write_text, join_optimizer_state, kept_checkpoints, load_checkpoint,
                                load_model_state, load_model_weights, model_state, run_size_hints, save_checkpoint,
                                split_optimizer_state)
from seq2seq.config import dump_config, load_config
from seq2seq.distributed import Ranks, data_parallel, lost_peer, shard
from seq2seq.distributed import init as init_distributed
from seq2seq.distributed import shutdown as shutdown_distributed
from seq2seq.divergence import FiniteLossGuard
from seq2seq.errors import Seq2SeqError
from seq2seq.loggers import MetricsLog, build_loggers
from seq2seq.modules import num_parameters
from seq2seq.run_lock import LOCK_NAME, RunLock
from seq2seq.scheduled_sampling import teacher_forcing_probability
from seq2seq.device import resolve_device
from seq2seq.tasks import build_task


def build_optimizer(cfg, params) -> torch.optim.Optimizer:
    """Adam (Kingma & Ba 2015), AdamW (Loshchilov & Hutter 2019) or SGD with momentum.

    Uses torch's fused implementation (one kernel for all parameters): on CPU
    torch's default Adam loops over parameters in Python, about 20x slower per
    update for a model of a million parameters.
    """
    params = list(params)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay, fused=True)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay, fused=True)
    return torch.optim.SGD(params, lr=cfg.learning_rate, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                           fused=True)


def autocast(precision: str, device: torch.device):
    """Context for the training forward pass: bf16 autocast, or nothing for fp32.

    Under bf16, matrix products run in bfloat16 while parameters, optimizer state,
    cell states and the loss stay in fp32 (mixed precision).
    """
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def cpu_has_native_bf16(cpuinfo: str | Path = "/proc/cpuinfo") -> Optional[bool]:
    """Whether this CPU multiplies bfloat16 natively (x86 ``avx512_bf16`` / ``amx_bf16``, Arm
    ``bf16``), read from Linux's ``cpuinfo`` flags; None where that file cannot be read.
    Without it, bf16 autocast emulates the products and runs several times slower than fp32."""
    try:
        flags = {f for line in Path(cpuinfo).read_text(errors="replace").splitlines()
                 if line.startswith(("flags", "Features")) for f in line.split(":", 1)[1].split()}
    except OSError:
        return None
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def resolve_precision(precision: str, device: torch.device) -> str:
    """``training.precision`` as run on ``device``: ``auto`` becomes ``bf16`` where the
    device multiplies bfloat16 natively (CUDA: ``torch.cuda.is_bf16_supported()``; CPU:
    :func:`cpu_has_native_bf16`), ``fp32`` elsewhere (emulated bf16 products are several
    times slower than fp32); ``fp32`` and ``bf16`` are returned as they are."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if device.type == "cpu" and cpu_has_native_bf16() else "fp32"


class BudgetLinearLR:
    """Linear decay over the training budget (Li, Yumer & Ramanan 2020, "Budgeted
    Training", ICLR: with a fixed budget, a rate that falls linearly to its floor
    exactly when the budget runs out beats step and plateau schedules).

    After an optional linear warm-up over ``warmup_steps`` updates the rate is
    ``min_lr + (lr - min_lr) * (1 - used)``, ``used`` in [0, 1] the fraction of the
    budget (``max_steps`` or ``max_minutes``, whichever ends first) spent so far.  The
    rate depends only on (step, used), so it keeps no state of its own; with
    ``max_minutes`` it follows the clock, so a resumed run continues where the time left
    puts it.

    Args:
        optimizer: its param groups get the rate.
        lr: the peak rate (``training.learning_rate``).
        min_lr: the rate at the end of the budget (``training.min_learning_rate``).
        warmup_steps: linear warm-up length in updates (0 = none).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, lr: float, min_lr: float, warmup_steps: int):
        self.optimizer, self.lr, self.min_lr, self.warmup = optimizer, lr, min(min_lr, lr), warmup_steps
        self.step(0, 0.0)

    def rate(self, step: int, used: float) -> float:
        """The rate for update ``step + 1`` after ``used`` (0..1) of the budget."""
        warm = min(1.0, (step + 1) / self.warmup) if self.warmup else 1.0
        return warm * (self.min_lr + (self.lr - self.min_lr) * (1.0 - min(1.0, max(0.0, used))))

    def step(self, step: int, used: float) -> None:
        """Set the rate of the next update: ``step`` updates taken, ``used`` of the budget spent."""
        for group in self.optimizer.param_groups:
            group["lr"] = self.rate(step, used)

    def state_dict(self) -> dict:
        """Empty: the rate is a function of the trainer's step and clock."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Nothing to restore (see :meth:`state_dict`)."""


def build_scheduler(cfg, optimizer: torch.optim.Optimizer, higher_is_better: bool = False):
    """The learning-rate schedule of ``training.scheduler``.

    ``plateau`` steps on validation scores (``higher_is_better``: the direction of
    ``early_stopping_metric``); ``inverse_sqrt`` (linear warm-up, then
    ``sqrt(warmup / step)``, Vaswani et al. 2017, eq. 3) and ``exponential``
    (``decay_rate ** (step / decay_steps)`` after an optional warm-up) step once per
    update; ``linear`` (:class:`BudgetLinearLR`) is set once per update from the
    trainer's step and the fraction of the budget spent.  The rate never falls below
    ``min_learning_rate``.

    Returns:
        A torch scheduler, a :class:`BudgetLinearLR`, or None for ``none``.
    """
    if cfg.scheduler == "none":
        return None
    if cfg.scheduler == "linear":
        return BudgetLinearLR(optimizer, cfg.learning_rate, cfg.min_learning_rate, cfg.warmup_steps)
    if cfg.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max" if higher_is_better else "min",
            factor=cfg.plateau_factor, patience=cfg.plateau_patience, min_lr=cfg.min_learning_rate)
    floor = cfg.min_learning_rate / cfg.learning_rate
    warmup = cfg.warmup_steps

    def factor(step: int) -> float:
        n = step + 1                                   # the update about to be taken, 1-based
        if n <= warmup:
            return n / warmup
        if cfg.scheduler == "inverse_sqrt":
            return max(floor, math.sqrt(warmup / n))
        return max(floor, cfg.decay_rate ** ((n - warmup) / cfg.decay_steps))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


@dataclass
class TrainState:
    """Counters that a checkpoint restores on resume."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    elapsed_s: float = 0.0
    best_score: Optional[float] = None
    best_step: int = 0
    bad_validations: int = 0
    stopped: str = ""
    extra: dict = field(default_factory=dict)
    window: dict = field(default_factory=dict)     # the logging window's sums since the last train row
    samples_in_epoch: int = 0                      # examples of this epoch trained on, over all ranks


class TrainingPass(nn.Module):
    """The task's training forward pass as one module call, so that
    DistributedDataParallel sees every forward (scheduled sampling and the forecast
    model call several sub-modules of the model).

    Args:
        task: the task (its ``forward(model, batch, teacher_forcing)``).
        model: the task's model (the only sub-module).
    """

    def __init__(self, task, model: nn.Module):
        super().__init__()
        self.task, self.model = task, model

    def forward(self, batch, teacher_forcing: float):
        """The model output for ``task.criterion`` (see :meth:`TextTask.forward`)."""
        return self.task.forward(self.model, batch, teacher_forcing)


class Trainer:
    """Runs the training loop of one run directory, for any task.

    Args:
        task: a :mod:`seq2seq.tasks` task with its training data.
        model: the task's model, already on ``device``.
        run_dir: the run directory (created by :func:`train`).
        device: where to train (this rank's device).
        ranks: this process's place in a data-parallel job (default: one process).
    """

    def __init__(self, task, model: nn.Module, run_dir: Path, device: torch.device, ranks: Ranks = Ranks()):
        self.task, self.model, self.run_dir, self.device, self.ranks = task, model, Path(run_dir), device, ranks
        self.training_pass = data_parallel(TrainingPass(task, model), ranks, device,
                                           task.config.training.distributed.find_unused_parameters)
        self.config = task.config
        t = self.config.training
        self.precision = resolve_precision(t.precision, device)
        self.optimizer = build_optimizer(t, model.parameters())
        self.metric = t.early_stopping_metric
        self.higher_better = task.higher_is_better(self.metric)
        self.scheduler = build_scheduler(t, self.optimizer, self.higher_better)
        self.per_update_scheduler = self.scheduler is not None and t.scheduler != "plateau"
        self.state = TrainState()
        tf = t.teacher_forcing
        self.scheduled_sampling = not (tf.schedule == "constant" and tf.ratio == 1.0)
        self.stats: dict[str, list] = {}                  # name -> [sum, count] over the logging window
        self.window = {"loss": 0.0, "count": 0, "steps": 0}  # loss summed over the logging window
        self.best_file: tuple[Optional[float], int] = (None, 0)   # score and step of checkpoints/best
        self.metrics = MetricsLog(self.run_dir)
        self.loggers: list = []
        self.ckpt_dir = self.run_dir / "checkpoints"
        self._signatures_shown: set[str] = set()
        self._bar = None
        self.guard = FiniteLossGuard()            # NaN / inf losses stop training before a log or a save

    # ------------------------------------------------------------------ checkpoints
    def save(self, name: str, score: Optional[float] = None) -> None:
        """Save ``last`` (full training state) or ``best`` / ``step_*`` (weights + scores;
        ``score``: the best checkpoint's own score).  Only rank 0 writes; ``last`` is a
        collective (it gathers every rank's RNG state: ``rng.torch`` is rank 0's,
        ``rng.torch.rank<r>`` rank r's), so every rank calls it."""
        if name == "last":
            self.state.window = {**{k: float(v) if k == "loss" else v for k, v in self.window.items()},
                                 "stats": {k: list(v) for k, v in self.stats.items()}}
            rng = self.ranks.gather({"torch": torch.get_rng_state(),
                                     "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []})
        if not self.ranks.is_main:
            return
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        meta = {"step": self.state.step, "epoch": self.state.epoch,
                "best_score": self.state.best_score if score is None else score, "metric": self.metric}
        if name == "last":
            opt_tensors, opt_rest = split_optimizer_state(self.optimizer.state_dict())
            tensors.update(opt_tensors)
            for r, states in enumerate(rng):
                suffix = f".rank{r}" if r else ""
                tensors[f"rng.torch{suffix}"] = states["torch"]
                for i, s in enumerate(states["cuda"]):
                    tensors[f"rng.cuda.{i}{suffix}"] = s
            meta.update(train_state=self.state.__dict__, optimizer=opt_rest, world_size=self.ranks.world_size,
                        scheduler=self.scheduler.state_dict() if self.scheduler else None)
        save_checkpoint(self.ckpt_dir / name, tensors, meta)

    def restore(self) -> None:
        """Load ``last``: weights, optimizer, scheduler, counters, RNG, data position;
        drop the log rows written after it.

        With another number of ranks than the run had, training continues from the same
        global step and epoch, at the first global batch past the examples already seen
        this epoch, and says that the result is not bit-identical to an uninterrupted run
        (other global batches, other summation order); ranks the checkpoint has no RNG
        state for are seeded from (seed, rank, step).
        """
        tensors, meta = load_checkpoint(self.ckpt_dir / "last")
        load_model_state(self.model, model_state(tensors), self.ckpt_dir / "last.safetensors",
                         run_size_hints(self.run_dir))
        opt = join_optimizer_state({k: v for k, v in tensors.items() if k.startswith("optimizer.")}, meta["optimizer"])
        self.optimizer.load_state_dict(opt)
        if self.scheduler is not None and meta.get("scheduler"):
            self.scheduler.load_state_dict(meta["scheduler"])
        self.state = TrainState(**meta["train_state"])
        self.state.stopped = ""
        window = dict(self.state.window) or {"loss": 0.0, "count": 0, "steps": 0}
        self.stats = {k: list(v) for k, v in window.pop("stats", {}).items()}
        self.window = window
        if (self.ckpt_dir / "best.json").exists():
            best = json.loads((self.ckpt_dir / "best.json").read_text(encoding="utf-8"))
            self.best_file = (best.get("best_score"), best.get("step", 0))
        saved_world = meta.get("world_size", 1)
        suffix = f".rank{self.ranks.rank}" if self.ranks.rank else ""
        if f"rng.torch{suffix}" in tensors:
            torch.set_rng_state(tensors[f"rng.torch{suffix}"])
        else:
            torch.manual_seed(self.config.seed + 1_000_003 * self.ranks.rank + self.state.step)
        if torch.cuda.is_available():
            states = [tensors[f"rng.cuda.{i}{suffix}"] for i in range(torch.cuda.device_count())
                      if f"rng.cuda.{i}{suffix}" in tensors]
            if states and len(states) == torch.cuda.device_count():
                torch.cuda.set_rng_state_all(states)
        if saved_world != self.ranks.world_size:
            st = self.state
            sizes = [len(b) for b in self.epoch_batches(st.epoch)]
            seen, st.batch_in_epoch = 0, 0
            while st.batch_in_epoch < len(sizes) and seen < st.samples_in_epoch:
                seen += sizes[st.batch_in_epoch]
                st.batch_in_epoch += 1
            self._print(f"[resume] the run had {saved_world} rank(s), this job has {self.ranks.world_size}: "
                        f"continuing from global step {st.step} (epoch {st.epoch}, global batch {st.batch_in_epoch}), "
                        "not bit-identical to an uninterrupted run (other global batches and summation order)")
        if self.ranks.is_main:
            self.metrics.truncate(self.state.step)

    # ------------------------------------------------------------------ logging
    def log(self, record: dict) -> None:
        """One row to ``metrics.jsonl`` and every configured logger (rank 0 only)."""
        if not self.ranks.is_main:
            return
        self.metrics.log(record)
        for logger in self.loggers:
            logger.log(record)

    def _print(self, msg: str) -> None:
        if not self.ranks.is_main:
            return
        if self._bar is not None:
            self._bar.write(msg, file=sys.stderr)
        else:
            print(msg, file=sys.stderr, flush=True)

    # ------------------------------------------------------------------ validation
    def _better(self, score: float, than: Optional[float]) -> bool:
        return than is None or (score > than if self.higher_better else score < than)

    def validate(self, final: bool = False) -> None:
        """Validate, update best/early stopping/scheduler, save checkpoints, plots and logs.

        Args:
            final: the extra validation of a run that stopped off the ``validate_every``
                grid (a ``max_minutes``, ``max_epochs`` or off-grid ``max_steps`` stop),
                after ``last`` was saved.  It logs its row (``"final": true``) and
                replaces ``best`` when better, but leaves the scheduler, the patience
                counter and the best score that drives them alone, so a resumed run
                continues exactly as an uninterrupted one.

        Every rank calls it: rank 0 validates and broadcasts the results, so every rank
        steps the scheduler and counts patience alike; only rank 0 writes.

        Raises:
            Seq2SeqError: a loss since the last check was NaN or infinite (nothing is saved).
        """
        self.guard.check()
        results = self.task.validate(self.model, self.device) if self.ranks.is_main else None
        results = self.ranks.broadcast(results)
        self.model.train()
        if results is None:
            if not final:
                self.save("last")
            return
        score = results[self.metric]
        st = self.state
        improved = not final and self._better(score, st.best_score)
        if improved:
            st.best_score, st.best_step, st.bad_validations = score, st.step, 0
        elif not final:
            st.bad_validations += 1
        replaced = self._better(score, self.best_file[0])
        if replaced:
            self.best_file = (score, st.step)
            self.save("best", score)
        if self.scheduler is not None and not self.per_update_scheduler and not final:
            self.scheduler.step(score)
        self.log({"step": st.step, "epoch": st.epoch, "split": "valid",
                  **{k: (round(v, 6) if isinstance(v, float) else v) for k, v in results.items()},
                  "lr": self.optimizer.param_groups[0]["lr"], "best": replaced if final else improved,
                  **({"final": True} if final else {})})
        shown = " ".join(f"{k}={v:.4g}" for k, v in results.items() if isinstance(v, float))
        self._print(f"[valid] step {st.step} {shown}{' *best*' if replaced else ''}")
        for key in sorted(k for k in results if k.endswith("_signature") and k not in self._signatures_shown):
            self._print(f"[valid] sacrebleu {key.removesuffix('_signature')} signature: {results[key]}")
            self._signatures_shown.add(key)       # also in every validation row of metrics.jsonl
        if not final:
            self._keep_step_checkpoint()
            p = self.config.training.patience
            if p is not None and st.bad_validations >= p:
                st.stopped = f"early stopping: no better {self.metric} in {p} validations"
            self.save("last")
        if not self.ranks.is_main:
            return
        self.task.plot(self.metrics.records, self.run_dir)
        if any(hasattr(logger, "log_attention") for logger in self.loggers):
            example = self.task.attention_example(self.model, self.device)
            self.model.train()
            for logger in self.loggers:
                if example is not None and hasattr(logger, "log_attention"):
                    logger.log_attention(st.step, *example)

    def _keep_step_checkpoint(self) -> None:
        """With ``keep_checkpoints`` N, save ``step_<step>`` weights and drop all but the last N."""
        n = self.config.training.keep_checkpoints
        if n == 0 or not self.ranks.is_main:
            return
        self.save(f"step_{self.state.step:08d}")
        for stem in kept_checkpoints(self.ckpt_dir)[:-n]:
            for suffix in (".safetensors", ".json"):
                stem.with_name(stem.name + suffix).unlink(missing_ok=True)

    # ------------------------------------------------------------------ loop
    def _limit_reached(self) -> str:
        t, st = self.config.training, self.state
        if t.max_steps is not None and st.step >= t.max_steps:
            return f"reached training.max_steps={t.max_steps}"
        if t.max_epochs is not None and st.epoch >= t.max_epochs:
            return f"reached training.max_epochs={t.max_epochs}"
        if t.max_minutes is not None and st.elapsed_s >= 60 * t.max_minutes:
            return f"reached training.max_minutes={t.max_minutes}"
        return ""

    def _time_left(self, sec_per_step: float, batches_per_epoch: int) -> float:
        t, st = self.config.training, self.state
        left = [math.inf]
        if t.max_steps is not None:
            left.append((t.max_steps - st.step) * sec_per_step)
        if t.max_epochs is not None:
            left.append(((t.max_epochs - st.epoch) * batches_per_epoch - st.batch_in_epoch) * sec_per_step)
        if t.max_minutes is not None:
            left.append(60 * t.max_minutes - st.elapsed_s)
        return max(0.0, min(left))

    def teacher_forcing(self) -> float:
        """eps_i, the probability of feeding the gold previous output at the current update."""
        return teacher_forcing_probability(self.config.training.teacher_forcing, self.state.step)

    def train_step(self, batches: list) -> tuple[torch.Tensor, int]:
        """One update: forward (teacher forcing or scheduled sampling), the task's
        criterion, backward, clipping, optimizer step, per-update LR schedule.

        Args:
            batches: one batch, or ``accumulate_batches`` of them whose gradients are
                summed (the objective is normalised by all their tokens or values).

        Under torchrun ``batches`` are this rank's shares; the objective is normalised by
        the count over all ranks and scaled by the number of ranks, so the gradient
        DistributedDataParallel averages is the gradient of the whole global batch.

        Returns:
            The summed loss over all ranks and the count it is summed over.
        """
        t = self.config.training
        criterion = self.task.criterion
        ranks = self.ranks
        batches = [b.to(self.device) for b in batches]
        total = sum(criterion.count(b) for b in batches)
        if ranks.joined:
            total = int(ranks.all_sum([float(total)], self.device)[0])
        eps = self.teacher_forcing()
        self.optimizer.zero_grad(set_to_none=True)
        loss_total = None
        stats: dict[str, list] = {} if ranks.joined else self.stats    # this rank's, summed over ranks below
        for i, batch in enumerate(batches):
            sync = ranks.joined and i + 1 < len(batches)       # DDP all-reduces after the last micro-batch only
            with self.training_pass.no_sync() if sync else contextlib.nullcontext():
                with autocast(self.precision, self.device):
                    output = self.training_pass(batch, eps)
                terms = criterion(output, batch, self.state.step)
                (terms.objective * ranks.world_size / total).backward()
            loss_total = terms.loss if loss_total is None else loss_total + terms.loss
            for name, (value, n) in terms.stats.items():
                acc = stats.setdefault(name, [0.0, 0])
                acc[0] += value
                acc[1] += n
        if ranks.joined:                                        # the global loss and statistics, for logs
            names = sorted(stats)
            summed = ranks.all_sum([float(loss_total)] + [float(x) for k in names for x in stats[k]], self.device)
            loss_total = torch.tensor(summed[0], dtype=torch.float64)
            for j, k in enumerate(names):
                acc = self.stats.setdefault(k, [0.0, 0])
                acc[0] += summed[1 + 2 * j]
                acc[1] += int(summed[2 + 2 * j])
        if t.clip_grad_norm is not None:
            nn.utils.clip_grad_norm_(self.model.parameters(), t.clip_grad_norm)
        self.optimizer.step()
        if isinstance(self.scheduler, BudgetLinearLR):
            self.scheduler.step(self.state.step + 1, self.budget_used(self.state.step + 1))
        elif self.per_update_scheduler:
            self.scheduler.step()
        return loss_total, total

    def budget_used(self, step: int) -> float:
        """The fraction (0..1) of the training budget spent after ``step`` updates:
        the larger of ``step / max_steps`` and elapsed time / ``max_minutes`` (those set)."""
        t = self.config.training
        used = [0.0]
        if t.max_steps is not None:
            used.append(step / t.max_steps)
        if t.max_minutes is not None:
            used.append(self.state.elapsed_s / (60 * t.max_minutes))
        return min(1.0, max(used))

    def _train_record(self, eps: float, window_loss, window_count: int, dt: float) -> dict:
        st = self.state
        rec = {"step": st.step, "epoch": st.epoch, "split": "train",
               "loss": round(float(window_loss) / window_count, 6),
               f"{self.task.unit}_per_s": round(window_count / dt, 1),
               "lr": self.optimizer.param_groups[0]["lr"], "elapsed_s": round(st.elapsed_s, 1)}
        if self.scheduled_sampling:
            rec["teacher_forcing"] = round(eps, 6)
        rec.update({name: round(s / max(n, 1), 4) for name, (s, n) in self.stats.items()})
        rec.update(self.task.log_values(st.step))
        self.stats = {}
        return rec

    def epoch_batches(self, epoch: int) -> list[torch.Tensor]:
        """The global batches of ``epoch``: the task's order for a batch of ``batch_size x
        world_size``, without a last batch too small to give every rank an example."""
        world = self.ranks.world_size
        batches = self.task.epoch_batches(epoch, world)
        return batches if world == 1 else [b for b in batches if len(b) >= world]

    def fit(self) -> TrainState:
        """Train until a limit or early stopping; returns the final counters.

        Raises:
            Seq2SeqError: a NaN or infinite loss (nothing is saved after it), or a
                checkpoint that cannot be written (full disk, no permission).
        """
        from tqdm import tqdm

        t, st = self.config.training, self.state
        self.model.train()
        main = self.ranks.is_main
        self.loggers = build_loggers(t.loggers, self.run_dir, resume_step=st.step or None) if main else []
        use_bar = t.progress_bar and sys.stderr.isatty() and main
        self._bar = tqdm(total=t.max_steps, initial=st.step, unit="step", dynamic_ncols=True,
                         file=sys.stderr) if use_bar else None
        w = self.window                      # restored on resume, so the first train row is exact
        window_start = time.perf_counter()
        last_tick = time.perf_counter()
        validated_at = st.step
        st.stopped = st.stopped or self._limit_reached()
        try:
            while not st.stopped:
                batches = self.epoch_batches(st.epoch)
                while st.batch_in_epoch < len(batches):
                    group = batches[st.batch_in_epoch:st.batch_in_epoch + t.accumulate_batches]
                    eps = self.teacher_forcing()
                    loss_sum, count = self.train_step([self.task.batch(shard(idx, self.ranks)) for idx in group])
                    st.step += 1
                    self.guard.add(st.step, loss_sum, count)
                    st.batch_in_epoch += len(group)
                    st.samples_in_epoch += sum(len(idx) for idx in group)
                    now = time.perf_counter()
                    st.elapsed_s += now - last_tick
                    if self.ranks.joined:         # rank 0's clock everywhere: every rank stops at the same step
                        st.elapsed_s = self.ranks.all_sum([st.elapsed_s if main else 0.0], self.device)[0]
                    last_tick = now
                    w["count"] += count
                    w["loss"] += loss_sum
                    w["steps"] += 1
                    if st.step % t.log_every == 0:
                        self.guard.check()
                        dt = now - window_start
                        rec = self._train_record(eps, w["loss"], w["count"], dt)
                        self.log(rec)
                        left = self._time_left(dt / w["steps"], len(batches))
                        left_s = time.strftime("%H:%M:%S", time.gmtime(left)) if math.isfinite(left) else "?"
                        rate = rec[f"{self.task.unit}_per_s"]
                        if self._bar is not None:
                            self._bar.set_postfix(loss=f"{rec['loss']:.4g}", rate=f"{rate:,.0f}", left=left_s)
                        else:
                            self._print(f"[train] step {st.step} epoch {st.epoch} loss {rec['loss']:.4g} "
                                        f"{rate:,.0f} {self.task.unit}/s, {left_s} left")
                        w.update(loss=0.0, count=0, steps=0)
                        window_start = time.perf_counter()
                    if self._bar is not None:
                        self._bar.update(1)
                    if st.step % t.validate_every == 0:
                        w.update(loss=0.0, count=0, steps=0)     # before validate() saves it in last
                        self.validate()       # its time counts towards max_minutes (via last_tick)
                        validated_at = st.step
                        window_start = time.perf_counter()
                    st.stopped = st.stopped or self._limit_reached()
                    if st.stopped:
                        break
                else:
                    st.epoch += 1
                    st.batch_in_epoch = st.samples_in_epoch = 0
                    st.stopped = self._limit_reached()
            if validated_at != st.step:       # stopped off the validate_every grid
                self.save("last")             # the state an uninterrupted run has here: resume starts from it
                self.validate(final=True)
        finally:
            if self._bar is not None:
                self._bar.close()
                self._bar = None
            for logger in self.loggers:
                logger.close()
        best_score, best_step = self.best_file
        best = best_score if best_score is None else round(best_score, 4)
        self._print(f"[done] {st.stopped}; step {st.step}, best {self.metric} {best} at step {best_step}")
        if not main:
            return st
        atomic_write_text(self.run_dir / "training.json", json.dumps(
            {"steps": st.step, "seconds": round(st.elapsed_s, 1), "stopped": st.stopped, "best_step": best_step,
             "best": best_score, "metric": self.metric}, indent=1) + "\n")
        return st


# ---------------------------------------------------------------------- entry points


def run_dir_problem(run_dir: Path, overwrite: bool) -> Optional[str]:
    """Why a new run cannot be written into ``run_dir`` (a file, an existing run without
    ``overwrite``, a folder that is not a run), or None."""
    existing = run_dir.exists() and run_dir.is_dir() and any(p.name != LOCK_NAME for p in run_dir.iterdir())
    if run_dir.exists() and not run_dir.is_dir():
        return f"{run_dir}: exists and is not a directory; choose another --run"
    if existing and not overwrite:
        return f"{run_dir}: run directory exists; pass --overwrite to replace it or --resume {run_dir} to continue it"
    if existing and not (run_dir / "config.yaml").exists():
        return f"{run_dir}: not a run directory (no config.yaml); refusing to delete it even with --overwrite"
    return None


def prepare_run_dir(run_dir: Path, overwrite: bool) -> RunLock:
    """Create ``run_dir`` and take its writer's lock; refuse to reuse a non-empty one
    unless ``overwrite`` (checked again under the lock, so two new runs into one
    folder cannot both start).

    Returns:
        The held :class:`~seq2seq.run_lock.RunLock`; the caller releases it.

    Raises:
        Seq2SeqError: the directory exists and is not empty, is not a run directory
            (with ``overwrite``), cannot be written, or another process writes it.
    """
    def check() -> None:
        if problem := run_dir_problem(run_dir, overwrite):
            raise Seq2SeqError(problem)

    check()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise Seq2SeqError(f"{run_dir}: cannot create the run directory ({e.strerror or e})") from None
    lock = RunLock(run_dir).acquire()
    try:
        check()
        for p in run_dir.iterdir():
            if p.name != LOCK_NAME:
                shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
    except BaseException:
        lock.release()
        raise
    return lock


@contextlib.contextmanager
def flush_denormals(on: bool):
    """Flush-to-zero / denormals-are-zero (``torch.set_flush_denormal``) for a run, when
    ``on`` (``training.flush_denormal``): float32 values below 1.2e-38 read and written as 0.

    Entered before anything else of the run: the CPU's flags are per thread, and torch's
    intra-op worker threads copy them from this one when they are created, so set after
    the model is built they would reach this thread only.  On exit this thread goes back
    to torch's default (off; libraries such as hypothesis refuse to run under FTZ); worker
    threads created during the run keep it, which affects nothing but denormals."""
    if not on:
        yield
        return
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def _setup_torch(config) -> tuple[Ranks, torch.device]:
    """Threads, the device, and under torchrun the process group (:func:`seq2seq.distributed.init`)."""
    t = config.training
    if t.num_threads:
        torch.set_num_threads(t.num_threads)
    return init_distributed(t.distributed.backend, t.distributed.timeout_minutes, resolve_device(t.device))


@contextlib.contextmanager
def _distributed_job(ranks: Ranks):
    """Leave the process group at the end; a collective broken by another rank's death
    becomes one clear error on this rank."""
    try:
        yield
    except Exception as e:
        if ranks.joined and "find_unused_parameters" in str(e):
            raise Seq2SeqError(f"rank {ranks.rank}: some parameters of this model got no gradient in an update, "
                               "which DistributedDataParallel refuses by default; set "
                               "training.distributed.find_unused_parameters: true") from None
        if ranks.joined and lost_peer(e):
            first = str(e).splitlines()[0] if str(e) else ""
            raise Seq2SeqError(f"rank {ranks.rank}: another rank of the job stopped ({type(e).__name__}: "
                               f"{first[:160]}); ending this rank") from None
        raise
    else:
        shutdown_distributed(ranks)


def _announce(task, model, device, ranks: Ranks) -> None:
    """The data, model and (under torchrun) global batch lines, from rank 0."""
    if not ranks.is_main:
        return
    print(f"[data] {task.summary()}", file=sys.stderr)
    print(f"[model] {num_parameters(model):,} parameters on {device}", file=sys.stderr)
    precision = task.config.training.precision
    if precision == "auto":
        print(f"[precision] auto: {resolve_precision(precision, device)} on {device}", file=sys.stderr)
    if precision == "bf16" and device.type == "cpu" and cpu_has_native_bf16() is False:
        print("[warning] training.precision=bf16 on a CPU without native bfloat16 (no avx512_bf16, amx_bf16 or "
              "bf16 flag in /proc/cpuinfo): the products are emulated, slower than fp32; "
              "set training.precision=fp32 here", file=sys.stderr)
    if ranks.joined:
        t = task.config.training
        unit = "tokens" if getattr(t, "batch_type", "sentences") == "tokens" else "examples"
        n = ranks.world_size
        print(f"[distributed] {n} rank{'s' if n > 1 else ''} ({ranks.backend}): batch_size {t.batch_size} {unit} "
              f"per rank, global batch {n * t.batch_size} {unit}; learning rate {t.learning_rate} as configured",
              file=sys.stderr)


def train(config, run_dir: str | Path, overwrite: bool = False) -> Path:
    """Train a new run of any task described by ``config`` into ``run_dir``, holding
    the run's writer lock (:mod:`seq2seq.run_lock`) from start to end.

    Under torchrun, rank 0 creates the run directory, takes the lock and saves the
    vocabularies first; the other ranks then read them from ``run_dir`` (on one
    machine, or a file system every machine shares).

    With ``training.init_from`` the model starts from that run's ``init_checkpoint``
    weights (and, for text, its vocabularies); the optimizer and counters start afresh.

    Raises:
        Seq2SeqError: bad data, an existing run directory, incompatible model sizes
            (of the config, or of ``training.init_from``'s weights),
            another process writing ``run_dir``, a diverged loss, a failed write, a
            rank of the job that stopped.
    """
    run_dir = Path(run_dir)
    with flush_denormals(config.training.flush_denormal), contextlib.ExitStack() as stack:
        ranks, device = _setup_torch(config)
        stack.enter_context(_distributed_job(ranks))
        torch.manual_seed(config.seed)

        def create():                        # data and model errors come before the run directory exists
            task = build_task(config)
            model = task.build_model().to(device)
            if config.training.init_from:    # rank 0's weights are the job's (broadcast by data_parallel)
                load_model_weights(model, Path(config.training.init_from), config.training.init_checkpoint)
                print(f"[init] weights of {config.training.init_from} ({config.training.init_checkpoint})",
                      file=sys.stderr)
            stack.enter_context(prepare_run_dir(run_dir, overwrite))
            dump_config(config, run_dir / "config.yaml")
            task.save(run_dir)
            return task, model

        task, model = ranks.main_first(create) or (None, None)
        if task is None:                     # the other ranks: the vocabularies rank 0 saved
            task = build_task(config, run_dir)
            model = task.build_model().to(device)
        if ranks.rank:                       # rank 0's initial weights are broadcast; dropout differs per rank
            torch.manual_seed(config.seed + 1_000_003 * ranks.rank)
        _announce(task, model, device, ranks)
        Trainer(task, model, run_dir, device, ranks).fit()
    return run_dir


RESUMABLE_SECTIONS = ("training.", "decoding.", "evaluation.")


def resume(run_dir: str | Path, overrides: Optional[list[str]] = None) -> Path:
    """Continue the run in ``run_dir`` (any task) from its ``last`` checkpoint.

    Optimizer, scheduler, step, RNG state and data order are restored, so the run
    continues as if it had not stopped (under torchrun: with as many ranks as before;
    with another number it continues from the same global step, not bit-identically).
    ``overrides`` may change ``training.*``, ``decoding.*`` and ``evaluation.*`` (e.g.
    raise ``training.max_steps``).

    Holds the run's writer lock (:mod:`seq2seq.run_lock`) from start to end (rank 0).

    Raises:
        Seq2SeqError: not a run directory, a missing checkpoint, an override of
            the model or data, another process writing the run, a rank that stopped.
    """
    run_dir = Path(run_dir)
    for item in overrides or []:
        if not item.startswith(RESUMABLE_SECTIONS):
            raise Seq2SeqError(f"--set {item}: a resumed run can only change "
                               f"{', '.join(s + '*' for s in RESUMABLE_SECTIONS)}")
    if not (run_dir / "config.yaml").is_file():
        raise Seq2SeqError(f"{run_dir}: not a run directory (no config.yaml)")
    config = load_config(run_dir / "config.yaml", overrides)
    with flush_denormals(config.training.flush_denormal), contextlib.ExitStack() as stack:
        ranks, device = _setup_torch(config)
        stack.enter_context(_distributed_job(ranks))
        ranks.main_first(lambda: stack.enter_context(RunLock(run_dir)))     # one writer per run directory
        task = build_task(config, run_dir)
        model = task.build_model().to(device)
        trainer = Trainer(task, model, run_dir, device, ranks)
        trainer.restore()
        if ranks.is_main:
            dump_config(config, run_dir / "config.yaml")
            print(f"[resume] {run_dir} from step {trainer.state.step}", file=sys.stderr)
        trainer.fit()
    return run_dir


__all__ = ["Trainer", "train", "resume"]
