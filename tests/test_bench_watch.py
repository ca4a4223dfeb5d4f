"""`imgsearch bench --watch --smoke` produces its figures (no speed is asserted). A file of its own:
the suite runs one file to a process, and this stage alone starts a whole stack."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pytest

from tests.test_bench_smoke import IMGSEARCH, env, numbers

pytestmark = pytest.mark.usefixtures("weights", "photos")


def test_bench_watch_smoke_yields_every_figure(tmp_path: Path) -> None:
    """`imgsearch bench --watch --smoke`: the stack with a watcher, copies searched, idle watchers."""
    result = subprocess.run([IMGSEARCH, "bench", "--watch", "--smoke", "--workdir", str(tmp_path / "w"),
                             "--json", str(tmp_path / "watch.json")],
                            capture_output=True, text=True, env=env(), timeout=900, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "watch.json").read_text())
    assert report["singles"]["photos"] == 2 and report["burst"]["photos"] == 8
    assert report["burst"]["top_hit_found"] == report["burst"]["top_hit_checked"] > 0
    assert set(report["idle"]) == {"inotify", "polling"}
    assert all(math.isfinite(n) and n >= 0 for n in numbers(report)), report
    assert "| copy -> own top hit" in result.stdout
