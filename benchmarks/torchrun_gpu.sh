#!/usr/bin/env bash
# The G2P default model (configs/g2p_cmudict.yaml) trained under torchrun on one GPU:
# `torchrun --standalone --nproc_per_node 1`, NCCL, bf16 autocast, a fixed number of
# updates; prints the training speed (median target tokens/s of the logged windows after
# the first) and the test WER / PER of the best checkpoint (greedy).
#
#     bash benchmarks/torchrun_gpu.sh                 # STEPS=4000 NPROC=1 DEVICE=cuda BACKEND=nccl PRECISION=bf16
#     STEPS=20 DEVICE=cpu BACKEND=gloo PRECISION=fp32 bash benchmarks/torchrun_gpu.sh     # a CPU smoke test
#
# Writes runs/g2p_torchrun_gpu and benchmarks/results/torchrun_gpu.json.
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${STEPS:-4000}
NPROC=${NPROC:-1}
DEVICE=${DEVICE:-cuda}
BACKEND=${BACKEND:-nccl}
PRECISION=${PRECISION:-bf16}
RUN=runs/g2p_torchrun_gpu
PY=.venv/bin/python
[ -f data/cmudict/train.tsv ] || $PY -m seq2seq data cmudict --out data/cmudict --stress strip
start=$(date +%s)
$PY -m torch.distributed.run --standalone --nproc_per_node "$NPROC" -m seq2seq train configs/g2p_cmudict.yaml \
    --run-dir "$RUN" --overwrite --set training.device="$DEVICE" training.distributed.backend="$BACKEND" \
    training.precision="$PRECISION" training.max_minutes=null training.max_steps="$STEPS" training.progress_bar=false
train_s=$(( $(date +%s) - start ))
$PY -m seq2seq evaluate "$RUN" --data data/cmudict/test.tsv --json > "$RUN/test.json"
$PY - "$RUN" "$STEPS" "$NPROC" "$DEVICE" "$BACKEND" "$PRECISION" "$train_s" <<'EOF'
import json, statistics, sys
from pathlib import Path
run, steps, nproc, device, backend, precision, train_s = sys.argv[1:]
rows = [json.loads(line) for line in (Path(run) / "metrics.jsonl").read_text().splitlines()]
rates = [r["tokens_per_s"] for r in rows if r["split"] == "train"][1:]
test = json.loads((Path(run) / "test.json").read_text())
out = {"steps": int(steps), "nproc": int(nproc), "device": device, "backend": backend, "precision": precision,
       "train_wall_s": int(train_s), "tokens_per_s": round(statistics.median(rates)) if rates else None,
       "test_wer": test.get("wer"), "test_per": test.get("per")}
Path("benchmarks/results").mkdir(parents=True, exist_ok=True)
Path("benchmarks/results/torchrun_gpu.json").write_text(json.dumps(out, indent=1) + "\n")
print(json.dumps(out, indent=1))
EOF
