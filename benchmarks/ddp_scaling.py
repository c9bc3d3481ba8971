"""Data-parallel scaling on this machine: training tokens/s of the default G2P model in
one process, and with ``seq2seq train --nproc 1`` and ``--nproc 2`` (torchrun, gloo,
one thread per process), at the same batch per rank (so 2 ranks train on a global
batch twice as large).

What two CPU cores can show: two ranks share the machine's two cores, its memory
bandwidth and caches, and each update adds gloo all-reduces of the gradients and of
the loss counts; the speed-up over one single-threaded process is therefore below 2,
and says little about GPUs, where each rank has its own device.

Data: ``../shared/data/g2p-cmudict-g014b2b/g014b2b.train`` (the standard CMUdict G2P
training split, about 106,000 words) or ``--data TSV``.  Speed = the target tokens of
the global batches per second, from the ``tokens_per_s`` of ``metrics.jsonl`` rows
after the first (warm-up) one.

    python benchmarks/ddp_scaling.py [--updates 400] [--log-every 50] [--batch-size 64]
        [--out benchmarks/results/ddp_scaling.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs" / "g2p_cmudict.yaml"
SHARED = ROOT.parent / "shared" / "data" / "g2p-cmudict-g014b2b" / "g014b2b.train"


def measure(label: str, nproc: int | None, data: Path, run: Path, updates: int, log_every: int,
            batch_size: int) -> dict:
    """Train ``updates`` updates; the median tokens/s of the logged windows after the first."""
    cmd = [sys.executable, "-m", "seq2seq", "train", str(CONFIG), "--run-dir", str(run), "--overwrite",
           *(["--nproc", str(nproc)] if nproc else []), "--set", f"data.train={data}", "data.valid=null",
           "data.test=null", f"training.max_steps={updates}", "training.max_minutes=null",
           f"training.log_every={log_every}", f"training.validate_every={10 ** 9}", "training.num_threads=1",
           f"training.batch_size={batch_size}", "training.progress_bar=false"]
    p = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"{label} failed:\n{p.stderr[-3000:]}")
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    rates = [r["tokens_per_s"] for r in rows if r["split"] == "train"][1:]
    out = {"processes": nproc or 1, "launcher": "torchrun" if nproc else "none",
           "global_batch": batch_size * (nproc or 1), "tokens_per_s": round(statistics.median(rates)),
           "windows": rates}
    print(f"{label}: {out['tokens_per_s']:,} tokens/s (global batch {out['global_batch']})", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=SHARED)
    ap.add_argument("--updates", type=int, default=400)
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "ddp_scaling")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "ddp_scaling.json")
    args = ap.parse_args()
    results = {"data": str(args.data), "updates": args.updates, "batch_size_per_rank": args.batch_size,
               "cpus": os.cpu_count(), "threads_per_process": 1}
    for label, nproc in (("one process", None), ("torchrun, 1 rank", 1), ("torchrun, 2 ranks", 2)):
        results[label] = measure(label, nproc, args.data, args.work / label.replace(" ", "_").replace(",", ""),
                                 args.updates, args.log_every, args.batch_size)
    results["speedup_2_over_1"] = round(results["torchrun, 2 ranks"]["tokens_per_s"]
                                        / results["one process"]["tokens_per_s"], 2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"2 ranks / 1 process: {results['speedup_2_over_1']}x")


if __name__ == "__main__":
    main()
