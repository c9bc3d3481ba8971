"""Ablation on the standard G2P split: the paper presets, each attention type, and
scheduled sampling against full teacher forcing, at one fixed training budget.

Every row trains for ``--minutes`` of wall-clock time (validation included) on
``g014b2b.train`` minus 2,670 held-out validation words (as
:mod:`g2p_benchmark` splits it), keeps the best checkpoint by validation WER, and
decodes the 12,000 ``g014b2b.ref`` words greedily.  It prints greedy WER / PER,
parameters, training tokens/s (mean over the run's log lines) and updates done.

    python benchmarks/ablation.py [--minutes 3] [--rows NAME ...] [--json FILE]

Rows (``--rows`` picks some; ``--list`` names them):
presets sutskever2014, cho2014, bahdanau2015, luong2015 (general, dot, concat);
the default G2P model (configs/g2p_cmudict.yaml) with attention none / bahdanau /
luong_dot / luong_general / luong_concat; the default model with scheduled
sampling (eps_i linear from 1.0 to 0.5 over 4,000 updates, the same budget); the
Transformer preset (configs/presets/transformer_g2p.yaml); and the candidates for the
standard-split recipe (configs/g2p_g014b2b_large.yaml, one change each).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import torch  # noqa: E402

from g2p_benchmark import prepare  # noqa: E402
from seq2seq.api import Seq2Seq  # noqa: E402
from seq2seq.config import load_config  # noqa: E402
from seq2seq.modules import num_parameters  # noqa: E402
from seq2seq.training import train  # noqa: E402

CONFIGS = HERE.parent / "configs"
DEFAULT = CONFIGS / "g2p_cmudict.yaml"
RECIPE = CONFIGS / "g2p_g014b2b_large.yaml"
ROWS: dict[str, tuple[Path, list[str]]] = {
    "sutskever2014": (CONFIGS / "presets" / "sutskever2014.yaml", []),
    "cho2014": (CONFIGS / "presets" / "cho2014.yaml", []),
    "bahdanau2015": (CONFIGS / "presets" / "bahdanau2015.yaml", []),
    "luong2015 general": (CONFIGS / "presets" / "luong2015.yaml", []),
    "luong2015 dot": (CONFIGS / "presets" / "luong2015.yaml", ["model.decoder.attention=luong_dot"]),
    "luong2015 concat": (CONFIGS / "presets" / "luong2015.yaml", ["model.decoder.attention=luong_concat"]),
    "default, no attention": (DEFAULT, ["model.decoder.attention=none"]),
    "default, bahdanau": (DEFAULT, ["model.decoder.attention=bahdanau"]),
    "default, luong_dot": (DEFAULT, ["model.decoder.attention=luong_dot", "model.encoder.hidden_size=128"]),
    "default, luong_general": (DEFAULT, []),
    "default, luong_concat": (DEFAULT, ["model.decoder.attention=luong_concat"]),
    "default + scheduled sampling": (DEFAULT, ["training.teacher_forcing.schedule=linear",
                                               "training.teacher_forcing.start=1.0",
                                               "training.teacher_forcing.end=0.5",
                                               "training.teacher_forcing.steps=4000"]),
    "transformer_g2p preset": (CONFIGS / "presets" / "transformer_g2p.yaml", []),
    # the candidates for the standard-split recipe (configs/g2p_g014b2b_large.yaml), one change each
    "recipe": (RECIPE, []),
    "recipe, bf16": (RECIPE, ["training.precision=bf16"]),
    "recipe, batch 128": (RECIPE, ["training.batch_size=128", "training.learning_rate=0.003"]),
    "recipe, 2-layer encoder": (RECIPE, ["model.encoder.layers=2"]),
    "recipe, encoder 384": (RECIPE, ["model.encoder.hidden_size=384"]),
    # 0.3 was the recipe's dropout until 0.2 won at 15 minutes; ablation_recipe_*.json, run before
    # the change, call this row "recipe" and today's recipe "recipe, dropout 0.2"
    "recipe, dropout 0.3": (RECIPE, ["model.encoder.dropout=0.3", "model.decoder.dropout=0.3"]),
    "recipe, no label smoothing": (RECIPE, ["training.label_smoothing=0.0"]),
    "recipe, plateau schedule": (RECIPE, ["training.scheduler=plateau", "training.plateau_patience=3"]),
}


def run_row(name: str, minutes: float, workdir: Path, paths: dict, threads: int = 2) -> dict:
    """Train one row for ``minutes`` on ``threads`` threads and score it greedily on the test words."""
    path, overrides = ROWS[name]
    config = load_config(path, overrides + [
        f"data.train={paths['train']}", f"data.valid={paths['valid']}", f"data.test={paths['test']}",
        f"training.max_minutes={minutes}", "training.max_steps=null", "training.max_epochs=null",
        "training.progress_bar=false", "training.validate_every=1000", f"training.num_threads={threads}",
        "decoding.strategy=greedy"])
    run = workdir / name.replace(" ", "_").replace(",", "").replace("+", "plus")
    start = time.perf_counter()
    train(config, run, overwrite=True)
    seconds = time.perf_counter() - start
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    speeds = [r["tokens_per_s"] for r in records if r.get("split") == "train"]
    steps = max(r["step"] for r in records)
    curve = [[r["step"], r["wer"]] for r in records if r.get("split") == "valid" and "wer" in r]
    model = Seq2Seq.load(run)
    scores = model.evaluate(str(paths["test"]), metrics=["wer", "per"])
    return {"wer": scores["wer"], "per": scores["per"], "params": num_parameters(model.model),
            "tokens_per_s": sum(speeds) / len(speeds) if speeds else None, "steps": steps,
            "train_seconds": round(seconds, 1), "run": str(run), "valid_wer": curve}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--minutes", type=float, default=3.0, help="training budget per row (wall clock)")
    p.add_argument("--rows", nargs="+", choices=list(ROWS), default=list(ROWS), metavar="NAME")
    p.add_argument("--list", action="store_true", help="print the row names and exit")
    p.add_argument("--workdir", default="runs/ablation")
    p.add_argument("--threads", type=int, default=2, help="torch threads per row (two one-thread "
                   "processes with different --rows use both cores of this machine)")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    if args.list:
        print("\n".join(ROWS))
        return
    torch.set_num_threads(args.threads)
    workdir = Path(args.workdir)
    paths = prepare(workdir / "data")
    results = {}
    for name in args.rows:
        results[name] = run_row(name, args.minutes, workdir, paths, args.threads)
        print(f"[ablation] {name}: {results[name]}", file=sys.stderr, flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps({"minutes": args.minutes, "rows": results}, indent=1) + "\n")
    print(f"\nG2P ablation: g014b2b test (12,000 words), greedy, {args.minutes:g} min of training per row "
          f"({args.threads} threads, validation included)")
    print(f"| {'model':30s} | {'WER %':>6s} | {'PER %':>6s} | {'params':>9s} | {'train tok/s':>11s} | {'updates':>7s} |")
    print(f"|{'-' * 32}|{'-' * 8}|{'-' * 8}|{'-' * 11}|{'-' * 13}|{'-' * 9}|")
    for name, r in results.items():
        print(f"| {name:30s} | {r['wer']:6.2f} | {r['per']:6.2f} | {r['params']:9,d} | "
              f"{r['tokens_per_s'] or 0:11,.0f} | {r['steps']:7d} |")


if __name__ == "__main__":
    main()
