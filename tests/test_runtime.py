"""`runtime.configure()` (every imgsearch process): the young-object collection threshold; and
`runtime.pymilvus()`: pymilvus' own error lines (a traceback for every failed call) stay off
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


@pytest.mark.parametrize(("before", "after"), [("", "(10000, 10, 10)"), ("gc.set_threshold(500); ", "(500, 10, 10)")])
def test_imgsearch_collects_young_objects_less_often_unless_the_program_chose(before: str, after: str) -> None:
    probe = f"import gc; {before}import imgsearch; print(gc.get_threshold())"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == after
