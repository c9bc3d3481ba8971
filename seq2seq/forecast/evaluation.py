"""Scoring a forecaster on windows: free-running forecasts in the data's units and
their errors (MAE, RMSE, sMAPE, MASE, interval coverage).  No training imports."""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from seq2seq.config import ForecastConfig
from seq2seq.forecast.metrics import forecast_metrics
from seq2seq.forecast.model import ForecastModel
from seq2seq.forecast.series import read_series_csv
from seq2seq.forecast.windows import ForecastData, Windows


def load_data(config: ForecastConfig, path: Optional[str] = None) -> ForecastData:
    """Read and prepare ``path`` (default ``data.path``) as the config describes.

    Raises:
        Seq2SeqError: unreadable or malformed CSV (naming file, line, column), or a
            series too short for its split.
    """
    d = config.data
    path = path or d.path
    return ForecastData(read_series_csv(path, d.time_column, d.value_columns, d.id_column, d.missing), d, path)


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
        w = windows.take(np.arange(i, min(i + batch_size, len(windows)))).to(device)
        out.append(model(w.past, w.past_cal, w.future_cal, None, steps=steps).double().cpu().numpy())
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
