"""Forecast errors (Hyndman & Koehler 2006; Makridakis et al. 2020 for sMAPE and MASE).

Every function takes arrays of the same shape ``(n, horizon, V)`` -- n forecasts
of ``horizon`` steps of V columns -- in the data's units, and averages over all
their entries.  Percentages are in percent.
"""

from __future__ import annotations

import numpy as np


def mae(y: np.ndarray, yhat: np.ndarray) -> float:
    """Mean absolute error, in the data's units."""
    return float(np.mean(np.abs(y - yhat)))


def rmse(y: np.ndarray, yhat: np.ndarray) -> float:
    """Root mean squared error, in the data's units."""
    return float(np.sqrt(np.mean((y - yhat) ** 2)))


def smape(y: np.ndarray, yhat: np.ndarray) -> float:
    """Symmetric MAPE in percent: ``100 * mean(2 |y - yhat| / (|y| + |yhat|))``,
    a term with ``y = yhat = 0`` counting as 0 (range 0..200)."""
    num = 2.0 * np.abs(y - yhat)
    den = np.abs(y) + np.abs(yhat)
    return float(100.0 * np.mean(np.divide(num, den, out=np.zeros_like(num, dtype=np.float64), where=den > 0)))


def seasonal_scale(train: np.ndarray, season: int) -> np.ndarray:
    """MASE's denominator: the in-sample mean absolute error of the seasonal naive
    forecast ``y_t = y_{t-m}`` on a training part.

    Args:
        train: (T, V) training values, T > season.
        season: m (1 = the naive forecast).
    Returns:
        (V,); a zero scale (a constant series) becomes 1.
    """
    if len(train) <= season:
        raise ValueError(f"MASE needs more than season={season} training steps, got {len(train)}")
    s = np.mean(np.abs(train[season:] - train[:-season]), axis=0)
    return np.where(s > 0, s, 1.0)


def mase(y: np.ndarray, yhat: np.ndarray, scale: np.ndarray) -> float:
    """Mean absolute scaled error: ``mean(|y - yhat| / scale)``.

    Args:
        y, yhat: (n, horizon, V).
        scale: (n, V) per forecast (its series' :func:`seasonal_scale`), or (V,).
    """
    scale = scale[:, None, :] if scale.ndim == 2 else scale
    return float(np.mean(np.abs(y - yhat) / scale))


def coverage(y: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    """Percent of true values inside the interval ``[lower, upper]``."""
    return float(100.0 * np.mean((y >= lower) & (y <= upper)))


def pinball(y: np.ndarray, q: np.ndarray, levels) -> float:
    """Mean pinball (quantile) loss over levels (Koenker & Bassett 1978).

    Args:
        y: (n, horizon, V); q: (n, horizon, V, Q) predicted quantiles; levels: (Q,).
    """
    tau = np.asarray(levels, dtype=np.float64)
    diff = y[..., None] - q
    return float(np.mean(np.maximum(tau * diff, (tau - 1) * diff)))


def forecast_metrics(y: np.ndarray, yhat: np.ndarray, scale: np.ndarray, lower=None, upper=None) -> dict:
    """MAE, RMSE, sMAPE, MASE (and interval coverage when bounds are given).

    Args:
        y, yhat: (n, horizon, V) truth and point forecast.
        scale: (n, V) MASE scale per forecast.
        lower, upper: (n, horizon, V) interval bounds, or None.
    """
    out = {"mae": mae(y, yhat), "rmse": rmse(y, yhat), "smape": smape(y, yhat), "mase": mase(y, yhat, scale)}
    if lower is not None:
        out["coverage"] = coverage(y, lower, upper)
    return out
