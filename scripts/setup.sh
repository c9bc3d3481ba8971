#!/usr/bin/env bash
# Create (or reuse) the virtual environment .venv and install seq2seq into it.
#
# The venv sees the base interpreter's packages (--system-site-packages), so a
# torch build you already have (CUDA, ROCm, CPU) is kept.  Only when no torch is
# importable does this install torch==$TORCH_VERSION (default 2.13.0).
# Environment: PYTHON (interpreter, default python3), SEQ2SEQ_VENV (default .venv),
# TORCH_VERSION.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${SEQ2SEQ_VENV:-.venv}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
if [ ! -x "$VENV/bin/python" ]; then
    echo "[setup] creating $VENV" >&2
    "$PYTHON" -m venv --system-site-packages "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    echo "[setup] installing torch==$TORCH_VERSION" >&2
    "${PIP[@]}" install "torch==$TORCH_VERSION"
fi
stamp="$VENV/.seq2seq-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "[setup] installing seq2seq and its dependencies" >&2
    "${PIP[@]}" install -e ".[test]"
    touch "$stamp"
fi
