#!/usr/bin/env bash
# Create .venv at the repository root, install imgsearch with its pinned
# dependencies (constraints.txt is the lock) and provision the ResNet50 weights.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "imgsearch needs Python 3.11 or newer")'
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -c constraints.txt -e ".[test,dask]"
.venv/bin/imgsearch weights
