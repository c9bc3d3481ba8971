#!/usr/bin/env bash
# Speed of two commits in one interleaved run: train_speed.py and decode_speed.py
# (ours only, no peers) alternate between the commits, ROUNDS times, so that the
# machine's drift hits both alike.  Each commit is checked out in a temporary git
# worktree and run with this checkout's .venv (PYTHONPATH points at the worktree).
#
#   bash benchmarks/compare_commits.sh BASE [NEW=HEAD] [ROUNDS=2] [OUT=benchmarks/results/compare]
#
# Writes OUT/<commit>_{train,decode}_<round>.json and prints the per-model ratios NEW / BASE.
set -euo pipefail
cd "$(dirname "$0")/.."
base=$(git rev-parse --short "${1:?usage: compare_commits.sh BASE [NEW] [ROUNDS] [OUT]}")
new=$(git rev-parse --short "${2:-HEAD}")
rounds=${3:-2}
out=$(realpath -m "${4:-benchmarks/results/compare}")
py=$PWD/.venv/bin/python
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'git worktree remove --force "$tmp/$base" 2>/dev/null; git worktree remove --force "$tmp/$new" 2>/dev/null; rm -rf "$tmp"' EXIT
for c in "$base" "$new"; do git worktree add -q --detach "$tmp/$c" "$c"; done
ln -s "$(realpath ../shared)" "$tmp/shared"                # the benchmarks read ../shared beside the checkout
for r in $(seq 1 "$rounds"); do
    for c in "$base" "$new"; do
        echo "[compare] $(date +%T) round $r: $c" >&2
        (cd "$tmp/$c" && PYTHONPATH="$tmp/$c" "$py" benchmarks/train_speed.py --only identical default \
            --steps 200 --rounds 2 --no-bound --skip-onmt --json "$out/${c}_train_$r.json" >/dev/null)
        echo "[compare] $(date +%T) decoding" >&2
        (cd "$tmp/$c" && PYTHONPATH="$tmp/$c" "$py" benchmarks/decode_speed.py --train-steps 300 --limit 2000 \
            --repeats 2 --skip-onmt --json "$out/${c}_decode_$r.json" >/dev/null)
    done
done
"$py" - "$out" "$base" "$new" "$rounds" <<'PY'
import json, statistics, sys
out, base, new, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
load = lambda c, kind, r: json.load(open(f"{out}/{c}_{kind}_{r}.json"))
for model in ("identical", "default"):
    a = [load(base, "train", r)[model]["tok_per_s"] for r in range(1, rounds + 1)]
    b = [load(new, "train", r)[model]["tok_per_s"] for r in range(1, rounds + 1)]
    print(f"train  {model:10s} {base} {statistics.mean(a):8,.0f} tok/s  {new} {statistics.mean(b):8,.0f} tok/s"
          f"  ratio {statistics.mean(b) / statistics.mean(a):.3f}  (rounds: {', '.join(f'{y / x:.3f}' for x, y in zip(a, b))})")
for model in ("identical", "default"):
    for search in ("greedy", "beam5"):
        a = [load(base, "decode", r)[model][search]["words_per_s"] for r in range(1, rounds + 1)]
        b = [load(new, "decode", r)[model][search]["words_per_s"] for r in range(1, rounds + 1)]
        print(f"decode {model:10s} {search:6s} {base} {statistics.mean(a):8,.0f} w/s  {new} {statistics.mean(b):8,.0f} w/s"
              f"  ratio {statistics.mean(b) / statistics.mean(a):.3f}  (rounds: {', '.join(f'{y / x:.3f}' for x, y in zip(a, b))})")
PY
