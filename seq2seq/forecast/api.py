"""Python API for forecast runs::

    from seq2seq.forecast import Forecaster
    f = Forecaster.load("runs/forecast_co2")
    table = f.predict(history_frame, horizon=52)      # pandas DataFrame
    report = f.evaluate()                             # rolling origin, with baselines
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from seq2seq.checkpoint import load_model_weights
from seq2seq.config import ForecastConfig, load_config
from seq2seq.errors import Seq2SeqError
from seq2seq.export.manifest import is_export, read_manifest
from seq2seq.forecast.baselines import baseline_forecast
from seq2seq.forecast.evaluation import load_data, score_windows
from seq2seq.forecast.series import Scaler, Series, calendar_features, future_times, read_series_csv, series_from_frame
from seq2seq.forecast.metrics import forecast_metrics
from seq2seq.forecast.model import ForecastModel
from seq2seq.device import resolve_device


class Forecaster:
    """A trained forecast run, ready to forecast and to be evaluated.

    Args:
        config: the run's config; model: its network; scalers: series id -> Scaler.
    """

    def __init__(self, config: ForecastConfig, model: ForecastModel, scalers: dict[str, Scaler],
                 device: torch.device, run_dir: Path):
        self.config, self.model, self.scalers, self.device, self.run_dir = config, model, scalers, device, run_dir

    @classmethod
    def load(cls, run_dir: str | Path, checkpoint: str = "best", device: str = "auto") -> "Forecaster":
        """Load a forecast run directory, or one written by ``seq2seq export`` (decoded by
        onnxruntime on the CPU; ``checkpoint`` and ``device`` do not apply).

        Raises:
            Seq2SeqError: not a forecast run, a missing / corrupt checkpoint, or an
                exported file that differs from its manifest's checksum.
        """
        run_dir = Path(run_dir)
        if not (run_dir / "config.yaml").exists():
            raise Seq2SeqError(f"{run_dir}: not a run directory (no config.yaml)")
        exported = is_export(run_dir)          # seq2seq export: the checksums first, then onnxruntime on the CPU
        manifest = read_manifest(run_dir) if exported else None
        config = load_config(run_dir / "config.yaml", schema=ForecastConfig)
        d = config.data
        if exported:
            from seq2seq.export.runtime import OnnxForecastModel

            model, dev = OnnxForecastModel.from_manifest(run_dir, manifest, config), torch.device("cpu")
        else:
            model = ForecastModel.from_config(config.model, len(d.value_columns), 2 * len(d.calendar))
            load_model_weights(model, run_dir, checkpoint)
            dev = resolve_device(device)
        scalers = {k: Scaler.from_json(v) for k, v in
                   json.loads((run_dir / "scalers.json").read_text(encoding="utf-8")).items()}
        return cls(config, model.to(dev).eval(), scalers, dev, run_dir)

    # ------------------------------------------------------------------ forecasting
    def _forecast_series(self, series: Series, horizon: int) -> tuple[np.ndarray, np.ndarray]:
        """Forecast after the end of one series: (times (horizon,), values (horizon, V, Q))."""
        d = self.config.data
        if len(series.times) < d.input_len:
            label = f"series {series.id!r}: " if series.id else ""
            raise Seq2SeqError(f"{label}history has {len(series.times)} steps; the model reads input_len = "
                               f"{d.input_len}")
        scaler = self.scalers.get(series.id) or Scaler.fit(series.values, d.scaling)
        times = future_times(series.times, horizon)
        past = torch.from_numpy(scaler.transform(series.values[-d.input_len:]).astype(np.float32))[None]
        past_cal = torch.from_numpy(calendar_features(series.times[-d.input_len:], d.calendar))[None]
        future_cal = torch.from_numpy(calendar_features(times, d.calendar))[None]
        with torch.no_grad():
            out = self.model(past.to(self.device), past_cal.to(self.device), future_cal.to(self.device),
                             steps=horizon)[0].double().cpu().numpy()          # (H, V, Q)
        return times, scaler.inverse(out.transpose(0, 2, 1)).transpose(0, 2, 1)

    def predict(self, history, horizon: Optional[int] = None):
        """Forecast ``horizon`` steps after the end of every series in ``history``.

        Args:
            history: a CSV path or a pandas DataFrame with the run's time, value
                (and id) columns.
            horizon: steps to forecast (default: the trained ``data.horizon``; longer
                horizons continue the autoregressive generation).

        Returns:
            DataFrame: id (when the run has an id column), time, one column per value
            column (the point forecast, the median with quantiles) and, with
            quantiles, ``<column>_q<level>`` columns.

        Raises:
            Seq2SeqError: unreadable history, too short a series, bad values.
        """
        d = self.config.data
        if isinstance(history, (str, Path)):
            series = read_series_csv(history, d.time_column, d.value_columns, d.id_column, d.missing)
        else:
            series = series_from_frame(history, d.time_column, d.value_columns, d.id_column, d.missing, "history")
        return self.forecast_table(series, horizon)

    def forecast_table(self, series: list[Series], horizon: Optional[int] = None):
        """:meth:`predict` for series already read (:func:`~seq2seq.forecast.series.read_series_csv`).

        Raises:
            Seq2SeqError: horizon < 1, or a series shorter than ``data.input_len``.
        """
        import pandas as pd

        d = self.config.data
        horizon = horizon or d.horizon
        if horizon < 1:
            raise Seq2SeqError("horizon must be >= 1")
        tables = []
        for s in series:
            times, values = self._forecast_series(s, horizon)
            cols = {}
            if d.id_column:
                cols[d.id_column] = s.id
            cols[d.time_column] = times
            for j, c in enumerate(d.value_columns):
                cols[c] = values[:, j, self.model.median]
                if len(self.model.quantiles) > 1:
                    for k, q in enumerate(self.model.quantiles):
                        cols[f"{c}_q{q:g}"] = values[:, j, k]
            tables.append(pd.DataFrame(cols))
        return pd.concat(tables, ignore_index=True)

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, path: Optional[str] = None, baselines: Optional[list[str]] = None,
                 origin_stride: Optional[int] = None) -> dict:
        """Rolling-origin evaluation on the test part of every series.

        Origins start at the first test step and move by ``origin_stride``
        (default ``evaluation.origin_stride``); each forecasts ``data.horizon`` steps
        from all values before it.  The model and each baseline are scored on the
        same origins (MAE, RMSE, sMAPE, MASE; coverage for quantile models).

        Args:
            path: a CSV with the run's columns (default ``data.path``).
            baselines: names from :mod:`seq2seq.forecast.baselines` (default
                ``evaluation.baselines``).

        Returns:
            ``{"origins": n, "series": k, "horizon": H, "model": {...},
            "<baseline>": {...}, ...}``.
        """
        d, e = self.config.data, self.config.evaluation
        data = load_data(self.config, path)
        windows = data.windows("test", origin_stride or e.origin_stride)
        if len(windows) == 0:
            raise Seq2SeqError(f"{path or d.path}: no forecast origin fits the test part")
        report = {"origins": len(windows), "series": len(data.items), "horizon": d.horizon,
                  "model": score_windows(self.model, data, windows, self.device)}
        truth = data.unscale(windows.future.double().numpy(), windows.series)
        scales = data.mase_scales(windows.series)
        for name in baselines if baselines is not None else e.baselines:
            pred = np.stack([baseline_forecast(name, data.items[k].series.values[:o], d.horizon, d.season)
                             for k, o in zip(windows.series, windows.origins)])
            report[name] = forecast_metrics(truth, pred, scales)
        return report
