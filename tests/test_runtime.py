"""`runtime.pymilvus()`: pymilvus' own error lines (a traceback for every failed call) stay off
the terminal unless IMGSEARCH_LOG_LEVEL is debug: imgsearch says what failed in one line."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = ("import logging; from imgsearch import runtime; runtime.pymilvus(); "
         "print(logging.getLogger('pymilvus.decorators').isEnabledFor(logging.ERROR))")


@pytest.mark.parametrize(("level", "shown"), [("", "False"), ("warning", "False"), ("debug", "True"), ("DEBUG", "True")])
def test_pymilvus_error_tracebacks_show_only_when_debugging(level: str, shown: str) -> None:
    env = {key: value for key, value in os.environ.items() if key != "IMGSEARCH_LOG_LEVEL"}
    if level:
        env["IMGSEARCH_LOG_LEVEL"] = level
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=120,
                          check=True)
    assert done.stdout.strip() == shown
