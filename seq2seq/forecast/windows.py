"""Series prepared for a model: split, scaled, with calendar features, cut into windows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from seq2seq.config.forecast import ForecastDataConfig
from seq2seq.forecast.series import (Scaler, Series, SplitPoints, calendar_features, gather_windows, split_points,
                                   window_origins)
from seq2seq.forecast.metrics import seasonal_scale


@dataclass
class Windows:
    """A batch-ready set of windows (n windows, L input_len, H horizon, V values, C calendar).

    Attributes:
        past: (n, L, V) scaled inputs; past_cal: (n, L, C);
        future: (n, H, V) scaled targets; future_cal: (n, H, C);
        series: (n,) index of each window's series; origins: (n,) its first forecast step.
    """

    past: torch.Tensor
    past_cal: torch.Tensor
    future: torch.Tensor
    future_cal: torch.Tensor
    series: np.ndarray
    origins: np.ndarray

    def __len__(self) -> int:
        return len(self.origins)

    def to(self, device: torch.device) -> "Windows":
        """The windows with their tensors on ``device``."""
        return Windows(self.past.to(device), self.past_cal.to(device), self.future.to(device),
                       self.future_cal.to(device), self.series, self.origins)

    def take(self, index) -> "Windows":
        """The windows at ``index`` (a tensor or array of positions)."""
        i = torch.as_tensor(index)
        return Windows(self.past[i], self.past_cal[i], self.future[i], self.future_cal[i],
                       self.series[np.asarray(index)], self.origins[np.asarray(index)])


@dataclass
class PreparedSeries:
    """One series with everything a window needs.

    Attributes:
        series: the raw series; points: its time split; scaler: fitted on its training part;
        scaled: (T, V) float32 scaled values; calendar: (T, C) float32;
        mase_scale: (V,) in-sample seasonal-naive MAE of the training part.
    """

    series: Series
    points: SplitPoints
    scaler: Scaler
    scaled: np.ndarray
    calendar: np.ndarray
    mase_scale: np.ndarray


class ForecastData:
    """All series of a CSV, split by time and scaled on their training parts only.

    Args:
        series: from :func:`~seq2seq.forecast.series.read_series_csv`.
        cfg: the ``data`` section.
        where: file name for messages.

    Raises:
        Seq2SeqError: a series too short for its split.
    """

    def __init__(self, series: list[Series], cfg: ForecastDataConfig, where: str = "data"):
        self.cfg = cfg
        self.items: list[PreparedSeries] = []
        for s in series:
            points = split_points(s, cfg.valid_size, cfg.test_size, cfg.input_len, cfg.horizon, where)
            train = s.values[:points.valid]
            scaler = Scaler.fit(train, cfg.scaling)
            self.items.append(PreparedSeries(
                s, points, scaler, scaler.transform(s.values).astype(np.float32),
                calendar_features(s.times, cfg.calendar, where),
                seasonal_scale(train, min(cfg.season, len(train) - 1))))

    @property
    def values(self) -> int:
        return len(self.cfg.value_columns)

    @property
    def calendar(self) -> int:
        return 2 * len(self.cfg.calendar)

    def scalers(self) -> dict[str, dict]:
        """Series id -> scaler parameters (saved in the run directory)."""
        return {p.series.id: p.scaler.to_json() for p in self.items}

    def origins(self, part: str, stride: Optional[int] = None) -> list[np.ndarray]:
        """Per series, the window origins whose targets lie in ``part``.

        ``train``: targets end before the validation part; ``valid``: targets in the
        validation part; ``test``: origins in the test part (rolling origin).
        """
        c = self.cfg
        stride = stride or c.stride
        bounds = {"train": lambda p: (0, p.valid), "valid": lambda p: (p.valid, p.test),
                  "test": lambda p: (p.test, p.length)}[part]
        return [window_origins(*bounds(p.points), c.input_len, c.horizon, stride) for p in self.items]

    def windows(self, part: str, stride: Optional[int] = None) -> Windows:
        """The windows of ``part`` over all series (see :meth:`origins`)."""
        c = self.cfg
        pasts, futures, pcals, fcals, sids, origins = [], [], [], [], [], []
        for k, (p, o) in enumerate(zip(self.items, self.origins(part, stride))):
            seq = gather_windows(p.scaled, o, c.input_len, c.horizon)
            cal = gather_windows(p.calendar, o, c.input_len, c.horizon)
            pasts.append(seq[:, :c.input_len])
            futures.append(seq[:, c.input_len:])
            pcals.append(cal[:, :c.input_len])
            fcals.append(cal[:, c.input_len:])
            sids.append(np.full(len(o), k))
            origins.append(o)
        cat = lambda xs: torch.from_numpy(np.concatenate(xs).astype(np.float32))  # noqa: E731
        return Windows(cat(pasts), cat(pcals), cat(futures), cat(fcals), np.concatenate(sids),
                       np.concatenate(origins))

    def unscale(self, x: np.ndarray, series: np.ndarray) -> np.ndarray:
        """Scaled (n, ..., V) values of windows of ``series`` (n,) -> data units."""
        mean = np.stack([self.items[k].scaler.mean for k in series])
        std = np.stack([self.items[k].scaler.std for k in series])
        shape = (len(series),) + (1,) * (x.ndim - 2) + (x.shape[-1],)
        return x * std.reshape(shape) + mean.reshape(shape)

    def mase_scales(self, series: np.ndarray) -> np.ndarray:
        """(n, V) MASE scale of each window's series."""
        return np.stack([self.items[k].mase_scale for k in series])
