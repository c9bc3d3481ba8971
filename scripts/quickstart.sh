#!/usr/bin/env bash
# Set up, then train and evaluate the G2P quick-start on CMUdict (configs/g2p_cmudict.yaml).
# Extra arguments are passed to `seq2seq train`, e.g. --set training.max_minutes=5
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m seq2seq.quickstart "$@"
