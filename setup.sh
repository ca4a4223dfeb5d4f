#!/usr/bin/env bash
# Create .venv at the repository root, install imgsearch with its pinned
# dependencies (constraints.txt is the lock) and provision the ResNet50 weights.
#   ./setup.sh          what running imgsearch needs
#   ./setup.sh --test   and what the tests need: the test extras and Debian's chromium
set -euo pipefail
cd "$(dirname "$0")"
WITH_TESTS=0
[ "${1:-}" = "--test" ] && WITH_TESTS=1

# A .venv whose creation was interrupted (Ctrl-C while venv installs pip) has a python and no pip:
# it is made again, where it used to fail every later setup with "No module named pip".
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import pip' 2>/dev/null; then
  # The interpreter: $PYTHON where set; else the operating system's own python3 where it is 3.11 or
  # newer; else python3 on PATH. The system's first because distributions build CPython with
  # profile-guided and link-time optimisation, which pyenv's default build (python3 on this
  # machine's PATH) does not have: imgsearch's commands took 0.91 of the CPU on Debian's 3.11
  # (docs/tests.md). An existing .venv keeps the interpreter it was made with.
  if [ -z "${PYTHON:-}" ]; then
    PYTHON=python3
    if [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      PYTHON=/usr/bin/python3
    fi
  fi
  "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "imgsearch needs Python 3.11 or newer")'
  echo "creating .venv with $("$PYTHON" -c 'import sys; print(sys.executable, sys.version.split()[0])') (PYTHON=... chooses another)"
  "$PYTHON" -m venv --clear .venv
fi
# uv installs the ~200 pinned packages in about 10 s where pip took 50 (it links files out of its
# cache instead of unpacking every wheel again: tensorflow alone is 600 MB); where uv cannot be
# installed, pip does the same install. Either way constraints.txt decides every version.
# --system-certs: the operating system's certificates, as pip uses (a proxy's own CA included).
# --compile-bytecode: as pip does; without it, where PYTHONDONTWRITEBYTECODE is set (a shell or a
# container may set it), every process would compile TensorFlow's sources again (5 s a start).
# The venv's own pip installs uv as it is (upgrading pip first cost 1.6 s of every fresh setup), and
# is upgraded only where it cannot: an old pip may not know the tags of uv's wheels.
install_uv() { .venv/bin/python -m pip install --quiet -c constraints.txt uv; }
if install_uv 2>/dev/null || { .venv/bin/python -m pip install --quiet --upgrade pip && install_uv; }; then
  install() {
    .venv/bin/python -m uv pip install --quiet --system-certs --compile-bytecode --python .venv/bin/python "$@"
  }
else
  echo "note: uv could not be installed; installing with pip (slower)" >&2
  install() { .venv/bin/python -m pip install --quiet "$@"; }
fi
if [ "$WITH_TESTS" = 1 ]; then
  install -c constraints.txt -e ".[test,dask]"
  if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "installing Debian's chromium for the browser tests"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
      echo "note: install chromium (apt-get install chromium) to run the browser tests" >&2
    fi
  fi
else
  install -c constraints.txt -e ".[dask]"
fi
.venv/bin/imgsearch weights
