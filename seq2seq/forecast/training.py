"""Training a forecaster: regression losses, the loop, validation, checkpoints.

A forecast run directory holds::

    RUN/config.yaml         the resolved config (task: forecast)
    RUN/scalers.json        per series: mean and std of its training part
    RUN/metrics.jsonl       training loss and validation errors
    RUN/curves.png          the curves, loss on a log scale (as in the seed notebook)
    RUN/checkpoints/best.*  weights with the best validation metric; last.*: the final ones

The loss is computed in scaled units (each series standardised on its training
part), so series of different magnitudes weigh alike; validation errors are in
the data's units, on free-running forecasts of the validation part.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch import Tensor, nn

from seq2seq.checkpoint import atomic_write_text, save_checkpoint
from seq2seq.config import dump_config
from seq2seq.errors import Seq2SeqError
from seq2seq.forecast.config import ForecastConfig
from seq2seq.forecast.data import read_series_csv
from seq2seq.forecast.dataset import ForecastData, Windows
from seq2seq.forecast.metrics import forecast_metrics
from seq2seq.forecast.model import ForecastModel
from seq2seq.plotting import plot_curves
from seq2seq.scheduled_sampling import teacher_forcing_probability
from seq2seq.training import build_optimizer, build_scheduler, prepare_run_dir, resolve_device


def regression_loss(pred: Tensor, target: Tensor, kind: str, quantiles: list[float], delta: float = 1.0) -> Tensor:
    """Mean loss over all entries.

    Args:
        pred: (B, H, V, Q) forecasts; target: (B, H, V).
        kind: ``mse``, ``mae`` or ``huber`` (ignored when there are several quantiles).
        quantiles: the Q levels; with Q > 1 the pinball loss
            ``max(tau (y - q), (tau - 1)(y - q))`` averaged over levels.
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


@torch.no_grad()
def forecast_windows(model: ForecastModel, windows: Windows, device: torch.device, batch_size: int = 512,
                     steps: Optional[int] = None) -> np.ndarray:
    """Free-running forecasts of every window, batched.

    Returns:
        (n, H, V, Q) in scaled units (float64).
    """
    was_training = model.training
    model.eval()
    out = []
    for i in range(0, len(windows), batch_size):
        w = windows.take(np.arange(i, min(i + batch_size, len(windows))))
        out.append(model(w.past.to(device), w.past_cal.to(device), w.future_cal.to(device), None,
                         steps=steps).double().cpu().numpy())
    model.train(was_training)
    return np.concatenate(out) if out else np.zeros((0,))


def score_windows(model: ForecastModel, data: ForecastData, windows: Windows, device: torch.device,
                  scaled: Optional[np.ndarray] = None) -> dict:
    """Errors of the model's forecasts of ``windows`` in the data's units (point
    forecast = the median), with interval coverage for quantile models.

    Args:
        scaled: the forecasts from :func:`forecast_windows` when already computed
            (n, H, V, Q), else None to compute them.
    """
    if scaled is None:
        scaled = forecast_windows(model, windows, device)
    pred = data.unscale(scaled.transpose(0, 1, 3, 2), windows.series)
    pred = pred.transpose(0, 1, 3, 2)                                  # (n, H, V, Q)
    truth = data.unscale(windows.future.double().numpy(), windows.series)
    lower = upper = None
    if pred.shape[-1] > 1:
        lower, upper = pred[..., 0], pred[..., -1]
    return forecast_metrics(truth, pred[..., model.median], data.mase_scales(windows.series), lower, upper)


class ForecastTrainer:
    """The training loop of one forecast run.

    Args:
        config: the validated forecast config.
        run_dir: the run directory.
        data: prepared series.
        model: on ``device``.
        device: where to train.
    """

    def __init__(self, config: ForecastConfig, run_dir: Path, data: ForecastData, model: ForecastModel,
                 device: torch.device):
        self.config, self.run_dir, self.data, self.model, self.device = config, run_dir, data, model, device
        t = config.training
        self.optimizer = build_optimizer(t, model.parameters())
        self.scheduler = build_scheduler(t, self.optimizer)
        self.per_update_scheduler = self.scheduler is not None and t.scheduler != "plateau"
        self.train = data.windows("train")
        self.valid = data.windows("valid") if config.data.valid_size > 0 else None
        if len(self.train) == 0:
            raise Seq2SeqError(f"{config.data.path}: no training windows (input_len {config.data.input_len} + "
                               f"horizon {config.data.horizon} do not fit the training part)")
        self.metric = t.early_stopping_metric
        self.step, self.best, self.best_step, self.bad = 0, None, 0, 0
        self.records: list[dict] = []
        self.generator = torch.Generator().manual_seed(config.seed)

    def log(self, record: dict) -> None:
        """Append one record to ``metrics.jsonl``."""
        self.records.append(record)
        with open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def save(self, name: str) -> None:
        """Write weights and counters as ``checkpoints/<name>``."""
        save_checkpoint(self.run_dir / "checkpoints" / name, {f"model.{k}": v for k, v in self.model.state_dict().items()},
                        {"step": self.step, "best_score": self.best, "metric": self.metric})

    def train_step(self, batch: Windows) -> float:
        """One update on a batch of windows; returns the loss (scaled units)."""
        t = self.config.training
        eps = teacher_forcing_probability(t.teacher_forcing, self.step)
        pred = self.model(batch.past.to(self.device), batch.past_cal.to(self.device),
                          batch.future_cal.to(self.device), batch.future.to(self.device), teacher_forcing=eps)
        loss = regression_loss(pred, batch.future.to(self.device), t.loss, self.model.quantiles, t.huber_delta)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if t.clip_grad_norm is not None:
            nn.utils.clip_grad_norm_(self.model.parameters(), t.clip_grad_norm)
        self.optimizer.step()
        if self.per_update_scheduler:
            self.scheduler.step()
        return float(loss.detach())

    def validate(self, train_loss: float) -> bool:
        """Score the validation windows, keep the best weights; True to stop early."""
        if self.valid is None:
            self.save("best")
            return False
        pred = forecast_windows(self.model, self.valid, self.device)
        t = self.config.training
        loss = float(regression_loss(torch.from_numpy(pred), self.valid.future.double(), t.loss,
                                     self.model.quantiles, t.huber_delta))
        results = {"loss": loss, **score_windows(self.model, self.data, self.valid, self.device, pred)}
        score = results[self.metric]
        improved = self.best is None or score < self.best
        if improved:
            self.best, self.best_step, self.bad = score, self.step, 0
            self.save("best")
        else:
            self.bad += 1
        if self.scheduler is not None and not self.per_update_scheduler:
            self.scheduler.step(score)
        self.log({"step": self.step, "split": "valid", **{k: round(v, 6) for k, v in results.items()},
                  "lr": self.optimizer.param_groups[0]["lr"], "best": improved})
        print(f"[valid] step {self.step} train loss {train_loss:.4f} "
              + " ".join(f"{k}={v:.4g}" for k, v in results.items()) + (" *best*" if improved else ""),
              file=sys.stderr, flush=True)
        return t.patience is not None and self.bad >= t.patience

    def fit(self) -> str:
        """Train until a limit or early stopping; returns why it stopped."""
        t = self.config.training
        n = len(self.train)
        start, epoch, window, stopped = time.perf_counter(), 0, [], ""
        self.model.train()
        while not stopped:
            order = torch.randperm(n, generator=self.generator)
            for i in range(0, n, t.batch_size):
                window.append(self.train_step(self.train.take(order[i:i + t.batch_size])))
                self.step += 1
                elapsed = time.perf_counter() - start
                if self.step % t.log_every == 0:
                    self.log({"step": self.step, "epoch": epoch, "split": "train", "loss": round(float(np.mean(window)), 6),
                              "lr": self.optimizer.param_groups[0]["lr"], "elapsed_s": round(elapsed, 1)})
                if self.step % t.validate_every == 0:
                    if self.validate(float(np.mean(window))):
                        stopped = f"early stopping: no better {self.metric} in {t.patience} validations"
                    plot_curves(self.records, self.run_dir / "curves.png", self.metric, loss_label=f"{t.loss} loss")
                if self.step % t.log_every == 0:
                    window = []
                if t.max_steps is not None and self.step >= t.max_steps:
                    stopped = stopped or f"reached training.max_steps={t.max_steps}"
                if t.max_minutes is not None and elapsed >= 60 * t.max_minutes:
                    stopped = stopped or f"reached training.max_minutes={t.max_minutes}"
                if stopped:
                    break
            else:
                epoch += 1
                if t.max_epochs is not None and epoch >= t.max_epochs:
                    stopped = f"reached training.max_epochs={t.max_epochs}"
        if self.step % t.validate_every != 0:
            self.validate(float(np.mean(window)) if window else float("nan"))
            plot_curves(self.records, self.run_dir / "curves.png", self.metric, loss_label=f"{t.loss} loss")
        self.save("last")
        seconds = time.perf_counter() - start
        print(f"[done] {stopped}; step {self.step}, {seconds:.0f} s, best {self.metric} "
              f"{self.best if self.best is None else round(self.best, 4)} at step {self.best_step}", file=sys.stderr)
        atomic_write_text(self.run_dir / "training.json", json.dumps(
            {"steps": self.step, "seconds": round(seconds, 1), "stopped": stopped, "best_step": self.best_step,
             "best": self.best, "metric": self.metric}, indent=1) + "\n")
        return stopped


def load_data(config: ForecastConfig, path: Optional[str] = None) -> ForecastData:
    """Read and prepare ``path`` (default ``data.path``) as the config describes."""
    d = config.data
    path = path or d.path
    series = read_series_csv(path, d.time_column, d.value_columns, d.id_column, d.missing)
    return ForecastData(series, d, path)


def train_forecaster(config: ForecastConfig, run_dir: str | Path, overwrite: bool = False) -> Path:
    """Train a new forecast run into ``run_dir``.

    Raises:
        Seq2SeqError: bad data (naming file, line, column), an existing run directory.
    """
    run_dir = Path(run_dir)
    data = load_data(config)
    if config.training.num_threads:
        torch.set_num_threads(config.training.num_threads)
    device = resolve_device(config.training.device)
    torch.manual_seed(config.seed)
    model = ForecastModel.from_config(config.model, data.values, data.calendar).to(device)
    prepare_run_dir(run_dir, overwrite)
    dump_config(config, run_dir / "config.yaml")
    atomic_write_text(run_dir / "scalers.json", json.dumps(data.scalers(), indent=1) + "\n")
    trainer = ForecastTrainer(config, run_dir, data, model, device)
    print(f"[data] {len(data.items)} series; windows: train {len(trainer.train)}, "
          f"valid {len(trainer.valid) if trainer.valid is not None else 0}", file=sys.stderr)
    print(f"[model] {model.num_parameters():,} parameters on {device}", file=sys.stderr)
    trainer.fit()
    return run_dir
