"""The forecast side of the ``seq2seq`` command (dispatched from :mod:`seq2seq.cli`)::

    seq2seq data statsmodels --name co2 --out data/co2.csv
    seq2seq data sine --out data/sine.csv
    seq2seq train configs/forecast_co2.yaml
    seq2seq evaluate RUN [--data CSV] [--json]
    seq2seq predict RUN --data history.csv [--horizon H] [--out forecast.csv] [--plot forecast.png] [--holdout]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from seq2seq.errors import Seq2SeqError


def is_forecast_run(run: str | Path) -> bool:
    """Whether ``run`` holds a forecast run (its config says ``task: forecast``)."""
    import yaml

    path = Path(run) / "config.yaml"
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(raw, dict) and raw.get("task") == "forecast"


def format_report(report: dict) -> str:
    """Rolling-origin report as a table: one row per forecaster, one column per error."""
    methods = [k for k, v in report.items() if isinstance(v, dict)]
    metrics = list(report["model"])
    head = f"{'':<16}" + "".join(f"{m:>10}" for m in metrics)
    cell = lambda v: f"{v:>10.4g}" if v is not None else f"{'-':>10}"  # noqa: E731
    rows = [f"{name:<16}" + "".join(cell(report[name].get(m)) for m in metrics) for name in methods]
    note = f"{report['origins']} origins x horizon {report['horizon']} over {report['series']} series"
    return "\n".join([note, head, *rows])


def evaluate_command(args) -> None:
    """``seq2seq evaluate RUN`` for a forecast run: rolling origin, model and baselines."""
    from seq2seq.forecast.api import Forecaster

    model = Forecaster.load(args.run, args.checkpoint)
    report = model.evaluate(args.data)
    print(json.dumps(report, indent=1) if args.json else format_report(report))


def predict_command(args) -> None:
    """``seq2seq predict RUN --data CSV`` for a forecast run: CSV of forecasts, optional PNG.

    With ``--holdout`` the last ``horizon`` steps of every series are hidden from
    the model and drawn as the true future.
    """
    from seq2seq.forecast.api import Forecaster
    from seq2seq.forecast.series import read_series_csv
    from seq2seq.plotting import plot_forecast

    if not args.data:
        raise Seq2SeqError("predict on a forecast run needs --data HISTORY.csv")
    if args.horizon is not None and args.horizon < 1:
        raise Seq2SeqError(f"--horizon must be >= 1, not {args.horizon}")
    model = Forecaster.load(args.run, args.checkpoint)
    d = model.config.data
    horizon = args.horizon or d.horizon
    series = read_series_csv(args.data, d.time_column, d.value_columns, d.id_column, d.missing)
    truth = {}
    if args.holdout:
        for s in series:
            if len(s.times) <= horizon:
                raise Seq2SeqError(f"{args.data}: --holdout {horizon} steps leaves series {s.id!r} no history")
            truth[s.id] = s.values[-horizon:]
            s.times, s.values = s.times[:-horizon], s.values[:-horizon]
    table = model.forecast_table(series, horizon)
    text = table.to_csv(index=False)
    if args.out:
        from seq2seq.checkpoint import atomic_write_text

        atomic_write_text(Path(args.out), text)
        print(f"forecast written to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    if args.plot:
        s = series[0]
        rows = table[table[d.id_column] == s.id] if d.id_column else table
        col = d.value_columns[0]
        q = [c for c in rows.columns if c.startswith(f"{col}_q")]
        shown = min(len(s.times), max(4 * horizon, d.input_len))
        plot_forecast(s.times[-shown:], s.values[-shown:, 0], rows[d.time_column].to_numpy(), rows[col].to_numpy(),
                      Path(args.plot), truth=truth[s.id][:, 0] if truth else None,
                      lower=rows[q[0]].to_numpy() if q else None, upper=rows[q[-1]].to_numpy() if q else None,
                      title=f"{Path(args.run).name}: {col}{f' ({s.id})' if s.id else ''}", label=col)
        print(f"plot written to {args.plot}", file=sys.stderr)
    if truth:
        pred = np.stack([table[table[d.id_column] == s.id][d.value_columns].to_numpy() if d.id_column
                         else table[d.value_columns].to_numpy() for s in series])
        true = np.stack([truth[s.id] for s in series])
        print(f"held-out MAE {np.mean(np.abs(pred - true)):.4g} over {len(series)} series x {horizon} steps",
              file=sys.stderr)


def data_command(args) -> None:
    """``seq2seq data statsmodels`` and ``seq2seq data sine``."""
    from seq2seq.forecast.builtin_series import sine_csv, statsmodels_csv

    if args.dataset == "statsmodels":
        rows, cols = statsmodels_csv(args.name, args.out, args.overwrite)
        print(f"wrote {args.out}: {rows} rows, time + {', '.join(cols)}", file=sys.stderr)
    else:
        rows = sine_csv(args.out, args.series, args.length, args.seed, args.noise, args.overwrite)
        print(f"wrote {args.out}: {args.series} series x {args.length} steps (id, time, sin, cos)", file=sys.stderr)


def add_data_parsers(dsub) -> None:
    """Register ``data statsmodels`` and ``data sine``."""
    s = dsub.add_parser("statsmodels", help="a statsmodels dataset with a time axis as a forecast CSV")
    s.add_argument("--name", required=True, help="co2, sunspots, elnino, macrodata, nile, ...")
    s.add_argument("--out", required=True, help="CSV to write")
    s.add_argument("--overwrite", action="store_true")
    w = dsub.add_parser("sine", help="the seed's sine + cosine toy series as a forecast CSV")
    w.add_argument("--out", required=True)
    w.add_argument("--series", type=int, default=20)
    w.add_argument("--length", type=int, default=400)
    w.add_argument("--noise", type=float, default=0.0, help="Gaussian noise std")
    w.add_argument("--seed", type=int, default=1)
    w.add_argument("--overwrite", action="store_true")
