#!/usr/bin/env bash
# Run the test suite. Tests read real data from ../shared/data and never touch the network.
# Slow tests (the real SmolLM2 backbone, multi-process training) run when RMTENSION_SLOW=1 or under CI.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
exec "$PY" -m pytest -q "$@"
