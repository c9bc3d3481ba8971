#!/usr/bin/env bash
# Set up, then run the test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# -n auto: one pytest-xdist worker per core (tests that compare outputs exactly pin torch to one thread)
exec .venv/bin/python -m pytest -q -n auto "$@"
