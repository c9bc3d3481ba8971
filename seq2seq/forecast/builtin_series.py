"""Real and synthetic series written as forecast CSVs (``time`` column + values).

- :func:`statsmodels_csv`: any statsmodels dataset with a time axis: a date index
  (``co2``, weekly), a ``year`` column (``sunspots``, yearly), ``year`` + ``quarter``
  (``macrodata``), or ``year`` + twelve month columns, read as one monthly series
  (``elnino``).  Missing values stay empty cells; the config's ``data.missing``
  decides what happens to them.
- :func:`sine_csv`: the seed notebook's toy task: pairs of signals
  ``sin(x + phi)`` and ``cos(x + phi)`` with a random phase per series.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from seq2seq.checkpoint import atomic_write_text
from seq2seq.errors import Seq2SeqError

MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")


def statsmodels_frame(name: str):
    """The statsmodels dataset ``name`` as a DataFrame with a ``time`` column first.

    Raises:
        Seq2SeqError: no such dataset, or one without a time axis.
    """
    import pandas as pd
    import statsmodels.datasets as smd

    module = getattr(smd, name, None)
    if module is None or not hasattr(module, "load_pandas"):
        names = sorted(n for n in dir(smd) if hasattr(getattr(smd, n), "load_pandas"))
        raise Seq2SeqError(f"statsmodels has no dataset '{name}' (datasets: {', '.join(names)})")
    df = module.load_pandas().data
    cols = {c.lower(): c for c in df.columns}
    if isinstance(df.index, pd.DatetimeIndex):
        out = df.reset_index(names="time")
        out["time"] = out["time"].dt.strftime("%Y-%m-%d")
    elif "year" in cols and all(m in df.columns for m in MONTHS):
        long = df.melt(id_vars=[cols["year"]], value_vars=list(MONTHS), var_name="month", value_name="value")
        long["month"] = long["month"].map({m: i + 1 for i, m in enumerate(MONTHS)})
        long = long.sort_values([cols["year"], "month"])
        out = pd.DataFrame({"time": [f"{int(y)}-{m:02d}-01" for y, m in zip(long[cols["year"]], long["month"])],
                            "value": long["value"].to_numpy()})
    elif "year" in cols and "quarter" in cols:
        out = df.drop(columns=[cols["year"], cols["quarter"]])
        quarters = zip(df[cols["year"]], df[cols["quarter"]])
        out.insert(0, "time", [f"{int(y)}-{3 * int(q) - 2:02d}-01" for y, q in quarters])
    elif "year" in cols:
        out = df.rename(columns={cols["year"]: "time"})
        out["time"] = out["time"].astype(int)
    else:
        raise Seq2SeqError(f"statsmodels dataset '{name}' has no time axis (no date index or year column)")
    numeric = ["time"] + [c for c in out.columns if c != "time" and pd.api.types.is_numeric_dtype(out[c])]
    return out[numeric]


def statsmodels_csv(name: str, out: str | Path, overwrite: bool = False) -> tuple[int, list[str]]:
    """Write :func:`statsmodels_frame` as CSV; returns (rows, value columns).

    Raises:
        Seq2SeqError: an existing file without ``overwrite``; see :func:`statsmodels_frame`.
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise Seq2SeqError(f"{out}: exists; pass --overwrite to replace it")
    frame = statsmodels_frame(name)
    atomic_write_text(out, frame.to_csv(index=False))
    return len(frame), [c for c in frame.columns if c != "time"]


def sine_frame(series: int = 20, length: int = 400, seed: int = 1, noise: float = 0.0):
    """The seed's sine + cosine signals, ``series`` pairs of ``length`` steps.

    Each series draws a phase phi ~ U(0, 2 pi) and has columns ``sin`` =
    sin(x + phi) and ``cos`` = cos(x + phi) with x advancing 3 pi / 20 per step (the
    seed's 3 pi over 20 points), plus Gaussian noise of std ``noise``.
    """
    import pandas as pd

    rng = np.random.default_rng(seed)
    x = np.arange(length) * 3 * np.pi / 20
    rows = []
    for k in range(series):
        phi = rng.uniform(0, 2 * np.pi)
        rows.append(pd.DataFrame({"id": f"s{k:02d}", "time": np.arange(length),
                                  "sin": np.sin(x + phi) + noise * rng.standard_normal(length),
                                  "cos": np.cos(x + phi) + noise * rng.standard_normal(length)}))
    return pd.concat(rows, ignore_index=True)


def sine_csv(out: str | Path, series: int = 20, length: int = 400, seed: int = 1, noise: float = 0.0,
             overwrite: bool = False) -> int:
    """Write :func:`sine_frame` as CSV; returns the number of rows.

    Raises:
        Seq2SeqError: an existing file without ``overwrite``, or fewer than 1 series
            or 2 steps.
    """
    out = Path(out)
    if series < 1 or length < 2:
        raise Seq2SeqError(f"--series must be >= 1 and --length >= 2 (got {series} series of {length} steps)")
    if out.exists() and not overwrite:
        raise Seq2SeqError(f"{out}: exists; pass --overwrite to replace it")
    frame = sine_frame(series, length, seed, noise)
    atomic_write_text(out, frame.to_csv(index=False, float_format="%.6f"))
    return len(frame)
