"""Time-series forecasting with the encoder-decoder: continuous inputs and outputs
on the same encoder, bridge and attention modules as the text tasks.

- :mod:`seq2seq.config.forecast`: the ``task: forecast`` config schema.
- :mod:`~seq2seq.forecast.series`: CSV reading, splits by time, scaling, calendar features.
- :mod:`~seq2seq.forecast.windows`: series prepared into training / validation / test windows.
- :mod:`~seq2seq.forecast.model`: the forecasting encoder-decoder.
- :mod:`~seq2seq.forecast.evaluation`: free-running forecasts of windows and their errors
  (training is :mod:`seq2seq.tasks.forecast` under the one :mod:`seq2seq.training` loop).
- :mod:`~seq2seq.forecast.metrics`, :mod:`~seq2seq.forecast.baselines`: errors and baselines.
- :mod:`~seq2seq.forecast.api`: :class:`Forecaster` (load, predict, evaluate).
- :mod:`~seq2seq.forecast.builtin_series`: statsmodels series and the sine toy as CSV.
"""

from seq2seq.forecast.api import Forecaster

__all__ = ["Forecaster"]
