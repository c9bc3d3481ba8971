"""Time series data: reading a CSV, splits by time, scaling, calendar features, windows.

A series is a table of ``T`` time steps: its times and ``V`` value columns.  All
positions below are steps of one series, 0-based.  A *window* with origin ``o``
(the first forecast step) has inputs ``values[o - input_len:o]`` and targets
``values[o:o + horizon]``; the split points of :class:`SplitPoints` make every
training window's targets end before the validation part starts, so no future
value leaks into training (inputs of a validation or test window may read earlier
parts: that is the past, which a forecaster always has).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from seq2seq.errors import Seq2SeqError

__all__ = ["Series", "read_series_csv", "series_from_frame", "SplitPoints", "split_points", "Scaler",
           "calendar_features", "future_times", "window_origins", "gather_windows"]


@dataclass
class Series:
    """One time series.

    Attributes:
        id: the value of the id column ("" for a single series).
        times: (T,) ``datetime64[ns]`` or ``float64`` (e.g. years).
        values: (T, V) float64 in the data's units, no NaN after the fill policy.
    """

    id: str
    times: np.ndarray
    values: np.ndarray

    @property
    def is_datetime(self) -> bool:
        return np.issubdtype(self.times.dtype, np.datetime64)


def _fill(values: np.ndarray, policy: str, where: str, lines: np.ndarray, columns: Sequence[str]) -> np.ndarray:
    """Apply the missing-value policy to one series' (T, V) values (NaN = missing)."""
    missing = np.isnan(values)
    if not missing.any():
        return values
    if policy == "error":
        row, col = map(int, np.argwhere(missing)[0])
        raise Seq2SeqError(f"{where}:{lines[row]}: missing value in column '{columns[col]}' "
                           f"({int(missing.sum())} missing in all); set data.missing: interpolate or ffill")
    out = values.copy()
    for j in range(values.shape[1]):
        m = missing[:, j]
        if m.all():
            raise Seq2SeqError(f"{where}: column '{columns[j]}' has no values")
        if policy == "interpolate":
            pos = np.arange(len(m))
            out[m, j] = np.interp(pos[m], pos[~m], values[~m, j])   # ends take the nearest value
        else:                                                       # ffill, then back-fill a leading gap
            idx = np.where(~m, np.arange(len(m)), 0)
            np.maximum.accumulate(idx, out=idx)
            first = int(np.argmax(~m))
            idx[:first] = first
            out[:, j] = values[idx, j]
    return out


def series_from_frame(frame, time_column: str, value_columns: Sequence[str], id_column: Optional[str] = None,
                      missing: str = "error", where: str = "data") -> list[Series]:
    """Build :class:`Series` from a pandas DataFrame (rows in any order).

    Args:
        frame: the table, one row per (series, time).
        time_column: dates (any format pandas parses) or numbers.
        value_columns: numeric columns to forecast.
        id_column: series identifier, or None for one series.
        missing: ``error``, ``interpolate`` or ``ffill`` for empty / NaN values.
        where: the file name used in messages; row numbers count the header as line 1.

    Raises:
        Seq2SeqError: a missing column, a value that is not a number, a time that
            does not parse, a repeated time within a series, or a missing value
            with ``missing: error`` -- each naming the file, line and column.
    """
    import pandas as pd

    needed = [time_column, *value_columns] + ([id_column] if id_column else [])
    absent = [c for c in needed if c not in frame.columns]
    if absent:
        raise Seq2SeqError(f"{where}: no column {', '.join(repr(c) for c in absent)} "
                           f"(columns: {', '.join(map(str, frame.columns))})")
    if len(frame) == 0:
        raise Seq2SeqError(f"{where}: no rows")
    lines = np.arange(len(frame)) + 2
    raw_values = frame[list(value_columns)]
    values = raw_values.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    given = raw_values.notna().to_numpy() & (raw_values.astype(str).apply(lambda c: c.str.strip()) != "").to_numpy()
    bad = np.argwhere(np.isnan(values) & given)
    if len(bad):
        row, col = map(int, bad[0])
        raise Seq2SeqError(f"{where}:{lines[row]}: column '{value_columns[col]}': "
                           f"{raw_values.iat[row, col]!r} is not a number")
    raw_times = frame[time_column]
    numeric_times = pd.to_numeric(raw_times, errors="coerce")
    if pd.api.types.is_datetime64_any_dtype(raw_times):
        times = raw_times.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
    elif numeric_times.notna().all():
        times = numeric_times.to_numpy(dtype=np.float64)
    else:
        if pd.api.types.is_numeric_dtype(raw_times):
            row = int(np.argmax(numeric_times.isna().to_numpy()))
            raise Seq2SeqError(f"{where}:{lines[row]}: column '{time_column}': missing time")
        parsed = pd.to_datetime(raw_times, errors="coerce", format="mixed")
        if parsed.isna().any():
            row = int(np.argmax(parsed.isna().to_numpy()))
            raise Seq2SeqError(f"{where}:{lines[row]}: column '{time_column}': {raw_times.iat[row]!r} is neither "
                               "a date nor a number")
        times = parsed.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
    ids = frame[id_column].astype(str).to_numpy() if id_column else np.full(len(frame), "")
    out = []
    for sid in dict.fromkeys(ids):                       # first-seen order
        rows = np.flatnonzero(ids == sid)
        rows = rows[np.argsort(times[rows], kind="stable")]
        t = times[rows]
        dup = np.flatnonzero(t[1:] == t[:-1])
        if len(dup):
            r = rows[dup[0] + 1]
            label = f" (series {sid!r})" if id_column else ""
            raise Seq2SeqError(f"{where}:{lines[r]}: time {raw_times.iat[r]!r} appears twice{label}")
        name = f"{where} (series {sid!r})" if id_column else where
        out.append(Series(sid, t, _fill(values[rows], missing, name, lines[rows], value_columns)))
    return out


def read_series_csv(source, time_column: str, value_columns: Sequence[str],
                    id_column: Optional[str] = None, missing: str = "error", where: Optional[str] = None
                    ) -> list[Series]:
    """Read a CSV of one or several time series (see :func:`series_from_frame`).

    Args:
        source: a path, or a text stream (e.g. ``io.StringIO`` of a request body).
        where: the name used in messages (default: the path).

    Raises:
        Seq2SeqError: the file is missing or not CSV, or any problem of
            :func:`series_from_frame`, naming the file and line.
    """
    import pandas as pd

    if isinstance(source, (str, Path)):
        source = Path(source)
    where = where or str(source)
    try:
        frame = pd.read_csv(source, dtype=str, keep_default_na=False, na_values=["", "NA", "NaN", "nan"],
                            skipinitialspace=True)
    except FileNotFoundError:
        raise Seq2SeqError(f"{where}: no such file") from None
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as e:
        raise Seq2SeqError(f"{where}: not a readable CSV file ({str(e).strip()})") from None
    return series_from_frame(frame, time_column, value_columns, id_column, missing, where)


# ---------------------------------------------------------------------------- splits


@dataclass(frozen=True)
class SplitPoints:
    """Where one series' parts begin: train ``[0, valid)``, valid ``[valid, test)``,
    test ``[test, length)`` (step positions)."""

    valid: int
    test: int
    length: int


def split_points(series: Series, valid_size: int, test_size: int, input_len: int, horizon: int,
                 where: str = "data") -> SplitPoints:
    """The time split of one series: the last ``test_size`` steps are the test part,
    the ``valid_size`` before them the validation part.

    Raises:
        Seq2SeqError: the training part is too short for one window.
    """
    n = len(series.times)
    test = n - test_size
    valid = test - valid_size
    if valid < input_len + horizon:
        label = f" series {series.id!r}" if series.id else ""
        raise Seq2SeqError(f"{where}:{label} {n} steps leave {max(valid, 0)} for training, fewer than one window "
                           f"(input_len {input_len} + horizon {horizon}); lower data.test_size / valid_size / "
                           "input_len")
    return SplitPoints(valid, test, n)


def window_origins(start: int, stop: int, input_len: int, horizon: int, stride: int) -> np.ndarray:
    """Origins o with inputs ``[o - input_len, o)`` and targets ``[o, o + horizon)``
    such that ``start <= o`` and ``o + horizon <= stop``, every ``stride`` steps.

    Returns: (n,) int64, possibly empty.
    """
    first = max(start, input_len)
    return np.arange(first, stop - horizon + 1, stride, dtype=np.int64)


def gather_windows(array: np.ndarray, origins: np.ndarray, before: int, after: int) -> np.ndarray:
    """Slices ``array[o - before:o + after]`` for every origin, in one indexing op.

    Args:
        array: (T, F).
        origins: (n,) positions.
    Returns:
        (n, before + after, F).
    """
    idx = origins[:, None] + np.arange(-before, after)[None, :]
    return array[idx]


# ---------------------------------------------------------------------------- scaling


@dataclass
class Scaler:
    """Per-column standardisation ``(x - mean) / std`` of one series, fitted on its
    training part only.

    Attributes:
        mean, std: (V,) in the data's units (std of a constant column is 1).
    """

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, values: np.ndarray, kind: str = "standard") -> "Scaler":
        """Fit on (T, V) training values; ``none`` gives the identity."""
        v = values.shape[1]
        if kind == "none":
            return cls(np.zeros(v), np.ones(v))
        std = values.std(0)
        return cls(values.mean(0), np.where(std > 0, std, 1.0))

    def transform(self, x: np.ndarray) -> np.ndarray:
        """(..., V) data units -> scaled."""
        return (x - self.mean) / self.std

    def inverse(self, x: np.ndarray) -> np.ndarray:
        """(..., V) scaled -> data units (exact inverse of :meth:`transform`)."""
        return x * self.std + self.mean

    def to_json(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_json(cls, d: dict) -> "Scaler":
        return cls(np.asarray(d["mean"], dtype=np.float64), np.asarray(d["std"], dtype=np.float64))


# ---------------------------------------------------------------------------- calendar


def calendar_features(times: np.ndarray, names: Sequence[str], where: str = "data") -> np.ndarray:
    """Known-future covariates: sin and cos of each named calendar cycle.

    ``month`` (period 12), ``week`` (ISO week of year, 52.18), ``dayofweek`` (7),
    ``dayofyear`` (365.25), ``hour`` (24).

    Args:
        times: (T,) datetime64.
        names: features to compute, in order.
    Returns:
        (T, 2 * len(names)) float32.
    Raises:
        Seq2SeqError: calendar features asked for on numeric times.
    """
    import pandas as pd

    if not names:
        return np.zeros((len(times), 0), dtype=np.float32)
    if not np.issubdtype(times.dtype, np.datetime64):
        raise Seq2SeqError(f"{where}: data.calendar needs dates in the time column (got numbers)")
    idx = pd.DatetimeIndex(times)
    cycles = {"month": (idx.month - 1, 12.0), "week": (idx.isocalendar().week.to_numpy() - 1, 52.18),
              "dayofweek": (idx.day_of_week, 7.0), "dayofyear": (idx.day_of_year - 1, 365.25), "hour": (idx.hour, 24.0)}
    cols = []
    for name in names:
        value, period = cycles[name]
        angle = 2 * math.pi * np.asarray(value, dtype=np.float64) / period
        cols += [np.sin(angle), np.cos(angle)]
    return np.stack(cols, 1).astype(np.float32)


def future_times(times: np.ndarray, steps: int) -> np.ndarray:
    """The ``steps`` times after the last one, continuing the series' frequency.

    Dates use pandas' inferred frequency (weekly, month start, ...) and fall back to
    the last interval; numbers continue with the last interval.

    Args:
        times: (T,) with T >= 2, increasing.
    Returns:
        (steps,) of the same dtype.
    """
    import pandas as pd

    if len(times) < 2:
        raise Seq2SeqError("need at least two time steps to continue the time axis")
    if not np.issubdtype(times.dtype, np.datetime64):
        step = times[-1] - times[-2]
        return times[-1] + step * np.arange(1, steps + 1)
    idx = pd.DatetimeIndex(times[-min(len(times), 30):])
    freq = pd.DatetimeIndex(idx, freq="infer").freq if len(idx) >= 3 else None
    if freq is None:
        return (times[-1] + (times[-1] - times[-2]) * np.arange(1, steps + 1)).astype("datetime64[ns]")
    return pd.date_range(idx[-1], periods=steps + 1, freq=freq)[1:].to_numpy(dtype="datetime64[ns]")
