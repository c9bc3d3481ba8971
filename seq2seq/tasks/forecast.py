"""The forecast task: a series' past window to its next ``horizon`` steps, trained
with a regression loss (teacher forcing or scheduled sampling on the previous
value) and validated on free-running forecasts in the data's units."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import torch

from seq2seq.checkpoint import atomic_write_text
from seq2seq.config import ForecastConfig
from seq2seq.criteria import RegressionCriterion, regression_loss
from seq2seq.errors import Seq2SeqError
from seq2seq.forecast.evaluation import forecast_windows, load_data, score_windows
from seq2seq.forecast.model import ForecastModel
from seq2seq.forecast.windows import ForecastData, Windows


class ForecastTask:
    """Series from one CSV, split by time and cut into training and validation windows.

    Args:
        config: the run's config; data: the prepared series.

    Raises:
        Seq2SeqError: no training window fits the training part.
    """

    unit = "values"

    def __init__(self, config: ForecastConfig, data: ForecastData):
        self.config, self.data = config, data
        d, t = config.data, config.training
        self.train = data.windows("train")
        self.valid = data.windows("valid") if d.valid_size > 0 else None
        if len(self.train) == 0:
            raise Seq2SeqError(f"{d.path}: no training windows (input_len {d.input_len} + horizon {d.horizon} "
                               "do not fit the training part)")
        self.criterion = RegressionCriterion(t.loss, list(config.model.quantiles) or [0.5], t.huber_delta)

    @classmethod
    def for_training(cls, config: ForecastConfig) -> "ForecastTask":
        """Read ``data.path``; scalers are fitted on each series' training part, so a
        resumed run rebuilds the same ones."""
        return cls(config, load_data(config))

    def save(self, run_dir: Path) -> None:
        """``scalers.json``: per series, the mean and std of its training part."""
        atomic_write_text(run_dir / "scalers.json", json.dumps(self.data.scalers(), indent=1) + "\n")

    def build_model(self) -> ForecastModel:
        return ForecastModel.from_config(self.config.model, self.data.values, self.data.calendar)

    def summary(self) -> str:
        return (f"{len(self.data.items)} series; windows: train {len(self.train)}, "
                f"valid {len(self.valid) if self.valid is not None else 0}")

    # ------------------------------------------------------------------ training
    def epoch_batches(self, epoch: int, world_size: int = 1) -> list[torch.Tensor]:
        """Window indices of each global batch of ``epoch`` (``batch_size x world_size``
        windows): a permutation drawn from (seed, epoch)."""
        generator = torch.Generator().manual_seed(self.config.seed * 1_000_003 + epoch)
        order = torch.randperm(len(self.train), generator=generator)
        return list(order.split(self.config.training.batch_size * world_size))

    def batch(self, index: torch.Tensor) -> Windows:
        return self.train.take(index)

    def forward(self, model: ForecastModel, batch: Windows, teacher_forcing: float) -> torch.Tensor:
        """(B, H, V, Q) scaled forecasts; the previous true value is read with probability
        ``teacher_forcing``, the model's own forecast otherwise (Bengio et al. 2015)."""
        return model(batch.past, batch.past_cal, batch.future_cal, batch.future, teacher_forcing=teacher_forcing)

    def log_values(self, step: int) -> dict:
        return {}

    # ------------------------------------------------------------------ validation
    def validate(self, model: ForecastModel, device: torch.device) -> Optional[dict]:
        """The loss (scaled units) and the errors in the data's units of free-running
        forecasts of the validation windows, or None without a validation part."""
        if self.valid is None:
            return None
        pred = forecast_windows(model, self.valid, device)
        loss = regression_loss(torch.from_numpy(pred), self.valid.future.double(), self.criterion.kind,
                               self.criterion.quantiles, self.criterion.delta)
        return {"loss": float(loss), **score_windows(model, self.data, self.valid, device, pred)}

    @staticmethod
    def higher_is_better(metric: str) -> bool:
        return False                                          # every forecast error and the loss

    def plot(self, records: list[dict], run_dir: Path) -> None:
        from seq2seq.plotting import plot_curves

        t = self.config.training
        plot_curves(records, run_dir / "curves.png", t.early_stopping_metric, loss_label=f"{t.loss} loss")

    def attention_example(self, model: ForecastModel, device: torch.device):
        return None
