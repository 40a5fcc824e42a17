#!/usr/bin/env bash
# Set up provaudit in ./.venv on a fresh machine.
#   bash scripts/setup.sh         the tool (CPU torch first, then the package)
#   bash scripts/setup.sh test    also the test extras (pytest, Ray) and Debian's chromium for the HTML report test
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install --quiet --upgrade pip
# CPU build of torch first: an unpinned torch (pulled in by sentence-transformers) would fetch multi-GB CUDA wheels.
python -m pip install --quiet "torch==2.13.0"
if [ "${1:-}" = "test" ]; then
  python -m pip install --quiet -e ".[test]"
  if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = "0" ]; then
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
        || echo "warning: could not install chromium; the HTML rendering test will fail under CI" >&2
    else
      echo "warning: chromium missing and not root; install Debian's chromium package for the HTML test" >&2
    fi
  fi
else
  python -m pip install --quiet -e .
fi
echo "provaudit is installed in .venv (activate: . .venv/bin/activate)"
