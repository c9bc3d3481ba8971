"""Forecasting benchmark: the default seq2seq forecaster against naive, seasonal
naive, ETS and Theta on three real series from statsmodels.

For each of co2 (weekly, horizon 52), sunspots (yearly, horizon 11) and elnino
(monthly, horizon 12) -- and the seed's sine + cosine toy (``--datasets sine``,
20 series, horizon 10; its test MSE is printed next to the signals' variance,
0.5) -- it writes the CSV (``seq2seq data statsmodels`` / ``seq2seq data sine``), trains
``configs/forecast_<name>.yaml`` (its ``training.max_minutes`` budget, early
stopping on validation MAE), and scores model and baselines by rolling origin
on the test part (the config's ``evaluation.origin_stride``).  It prints MASE and
sMAPE per method with the network's training time, writes a JSON report and the
co2 forecast plot of the last test year (and the sine one with ``--sine-plot``).

    python benchmarks/forecast_benchmark.py [--datasets co2 sunspots elnino] [--threads 2]
        [--seeds 1] [--json benchmarks/results/forecast_benchmark.json] [--plot benchmarks/results/forecast_co2.png]
        [--sine-plot benchmarks/results/forecast_sine.png]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CONFIGS = HERE.parent / "configs"
COLUMNS = {"co2": "co2", "sunspots": "SUNACTIVITY", "elnino": "value", "sine": "sin"}
METHODS = ("model", "naive", "seasonal_naive", "ets", "theta")


def run_dataset(name: str, work: Path, threads: int, seed: int, overrides: list[str]) -> dict:
    """Train and evaluate one dataset; returns the rolling-origin report plus timing."""
    from seq2seq.config import load_config
    from seq2seq.forecast.api import Forecaster
    from seq2seq.forecast.builtin_series import sine_csv, statsmodels_csv
    from seq2seq.training import train

    csv = work / f"{name}.csv"
    if not csv.exists():
        sine_csv(csv) if name == "sine" else statsmodels_csv(name, csv)
    config = load_config(CONFIGS / f"forecast_{name}.yaml",
                         [f"data.path={csv}", f"training.num_threads={threads}", f"seed={seed}", *overrides])
    run = work / f"run_{name}_{seed}"
    train(config, run, overwrite=True)
    training = json.loads((run / "training.json").read_text())
    start = time.perf_counter()
    report = Forecaster.load(run).evaluate()
    report["evaluate_s"] = round(time.perf_counter() - start, 1)
    report["train_s"] = training["seconds"]
    report["steps"] = training["steps"]
    report["run"] = str(run)
    return report


def table(results: dict) -> str:
    """Markdown table: MASE and sMAPE per dataset and method."""
    head = "| series | origins x horizon | " + " | ".join(f"{m} MASE / sMAPE" for m in METHODS) + " | train time |"
    rows = [head, "|" + "---|" * (len(METHODS) + 3)]
    for name, r in results.items():
        best_stat = min(r[m]["mase"] for m in METHODS[1:] if m in r)
        cells = []
        for m in METHODS:
            if m not in r:
                cells.append("-")
                continue
            mark = "**" if r[m]["mase"] <= min(best_stat, r["model"]["mase"]) else ""
            cells.append(f"{mark}{r[m]['mase']:.3f}{mark} / {r[m]['smape']:.2f}%")
        rows.append(f"| {name} | {r['origins']} x {r['horizon']} | " + " | ".join(cells)
                    + f" | {r['train_s']:.0f} s ({r['steps']} updates) |")
    return "\n".join(rows)


def plot_last_horizon(run: str, csv: Path, horizon: int, out: Path) -> None:
    """A model's forecast of the last ``horizon`` steps of the first series, with the true values."""
    from seq2seq.forecast.cli import predict_command

    args = argparse.Namespace(run=run, checkpoint="best", data=str(csv), horizon=horizon,
                              out=str(out.with_suffix(".csv")), plot=str(out), holdout=True)
    predict_command(args)
    out.with_suffix(".csv").unlink()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", default=["co2", "sunspots", "elnino"], choices=list(COLUMNS))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seeds", type=int, nargs="+", default=[1], help="one run per seed; the table averages them")
    p.add_argument("--set", nargs="*", action="extend", default=[], dest="overrides", help="config overrides for every dataset")
    p.add_argument("--work", help="folder for CSVs and runs (default: a temporary one)")
    p.add_argument("--json", help="write the report here")
    p.add_argument("--plot", help="PNG of the co2 forecast of the last test year")
    p.add_argument("--sine-plot", help="PNG of the sine forecast of the last 10 steps")
    args = p.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="forecast_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    results, per_seed = {}, {}
    for name in args.datasets:
        reports = [run_dataset(name, work, args.threads, seed, args.overrides) for seed in args.seeds]
        per_seed[name] = reports
        merged = {k: reports[0][k] for k in ("origins", "series", "horizon")}
        for m in METHODS:
            if m in reports[0]:
                merged[m] = {k: float(np.mean([r[m][k] for r in reports])) for k in reports[0][m]}
        merged["train_s"] = float(np.mean([r["train_s"] for r in reports]))
        merged["steps"] = int(np.mean([r["steps"] for r in reports]))
        results[name] = merged
        print(f"[{name}] model MASE {merged['model']['mase']:.3f}; best baseline "
              f"{min(merged[m]['mase'] for m in METHODS[1:] if m in merged):.3f}", file=sys.stderr)
    print(table(results))
    if "sine" in results:
        print(f"sine + cosine: test MSE {results['sine']['model']['rmse'] ** 2:.2e} (series variance 0.5)")
    if args.json:
        Path(args.json).write_text(json.dumps({"threads": args.threads, "seeds": args.seeds, "results": results,
                                               "per_seed": per_seed}, indent=1) + "\n")
    if args.plot and "co2" in per_seed:
        plot_last_horizon(per_seed["co2"][0]["run"], work / "co2.csv", 52, Path(args.plot))
    if args.sine_plot and "sine" in per_seed:
        plot_last_horizon(per_seed["sine"][0]["run"], work / "sine.csv", 10, Path(args.sine_plot))


if __name__ == "__main__":
    main()
