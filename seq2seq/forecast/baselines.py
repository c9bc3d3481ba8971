"""Statistical baselines scored on the same forecast origins as the network.

- ``naive``: every future step repeats the last value.
- ``seasonal_naive``: step h repeats the value one season earlier,
  ``yhat_{o+h} = y_{o+h-m*k}`` with the smallest k >= 1 that reaches the past.
- ``ets``: exponential smoothing (Holt-Winters as in Hyndman & Athanasopoulos,
  *Forecasting: Principles and Practice*, ch. 8) from statsmodels: additive damped
  trend, plus additive seasonality of period m when two seasons of history exist.
- ``theta``: the Theta method (Assimakopoulos & Nikolopoulos 2000) from
  statsmodels, deseasonalised with period m when m > 1.

Each function maps a history ``(T, V)`` in the data's units to a forecast
``(horizon, V)``; ETS and Theta fit one univariate model per column.
"""

from __future__ import annotations

import warnings

import numpy as np

BASELINES = ("naive", "seasonal_naive", "ets", "theta")


def naive(history: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """Last value repeated: (T, V) -> (horizon, V)."""
    return np.repeat(history[-1:], horizon, axis=0)


def seasonal_naive(history: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """Value one season back: (T, V) -> (horizon, V); T must be >= season."""
    m = min(season, len(history))
    h = np.arange(horizon)
    return history[len(history) - m + (h % m)]


def _per_column(fit_forecast, history: np.ndarray, horizon: int) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                 # statsmodels' convergence chatter
        return np.stack([np.asarray(fit_forecast(history[:, j]), dtype=np.float64)[:horizon]
                         for j in range(history.shape[1])], 1)


def ets(history: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """Holt-Winters exponential smoothing (statsmodels), additive damped trend and
    additive season of period ``season`` when ``T >= 2 * season``."""
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    seasonal = season > 1 and len(history) >= 2 * season

    def fit(y):
        model = ExponentialSmoothing(y, trend="add", damped_trend=True, seasonal="add" if seasonal else None,
                                     seasonal_periods=season if seasonal else None,
                                     initialization_method="estimated")
        return model.fit().forecast(horizon)

    return _per_column(fit, history, horizon)


def theta(history: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """The Theta method (statsmodels ``ThetaModel``), deseasonalised with period
    ``season`` when ``season > 1`` and two seasons of history exist."""
    from statsmodels.tsa.forecasting.theta import ThetaModel

    seasonal = season > 1 and len(history) >= 2 * season

    def fit(y):
        model = ThetaModel(y, period=season if seasonal else 1, deseasonalize=seasonal)
        return model.fit().forecast(horizon)

    return _per_column(fit, history, horizon)


FUNCTIONS = {"naive": naive, "seasonal_naive": seasonal_naive, "ets": ets, "theta": theta}


def baseline_forecast(name: str, history: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """Forecast ``horizon`` steps after ``history`` (T, V) with the named baseline."""
    return FUNCTIONS[name](history, horizon, season)
