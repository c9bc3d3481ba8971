#!/usr/bin/env bash
# Set up, then run the test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/system_packages.sh
# -n auto: one pytest-xdist worker per core (tests that compare outputs exactly pin torch to one thread);
# --dist worksteal: an idle worker takes queued tests from a busy one, so the long end-to-end
# tests do not finish on one worker while the other waits (13 min 39 s -> 10 min 41 s here)
exec .venv/bin/python -m pytest -q -n auto --dist worksteal "$@"
