"""`imgsearch serve` as a process: SIGTERM stops it and everything it started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import write_folder
from imgsearch.processes import free_port, wait_until_healthy
from tests.test_deployments import clean_env

pytestmark = pytest.mark.usefixtures("weights")


def test_sigterm_leaves_no_process_behind(tmp_path: Path, photos: list) -> None:
    write_folder(tmp_path / "p", photos, 3)
    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "imgsearch"), "serve", "--port", str(port)],
        env=clean_env(DATA_DIR=str(tmp_path / "data"), PREFECT_HOME=str(tmp_path / "prefect")),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(f"{url}/health", server)
        deadline = time.monotonic() + 240
        started = httpx.post(f"{url}/api/index", json={"path": str(tmp_path / "p")}, timeout=60)
        assert started.status_code == 202, started.text
        run_id = started.json()["run_id"]
        while httpx.get(f"{url}/api/index/{run_id}", timeout=60).json()["state"] in ("PENDING", "RUNNING"):
            assert time.monotonic() < deadline
            time.sleep(0.5)
        children = psutil.Process(server.pid).children(recursive=True)
        assert children, "the background run started Prefect's ephemeral API"
        sessions, server_session = [os.getsid(child.pid) for child in children], os.getsid(server.pid)
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
        _, alive = psutil.wait_procs(children, timeout=15)
        assert alive == [], [" ".join(p.cmdline()[:4]) for p in alive]
        # In a session of its own, where a terminal's Ctrl-C to the server's group does not reach
        # it; it is started by whichever server process runs the index (each of --workers N).
        assert server_session not in sessions
    finally:
        if server.poll() is None:  # a failure above: nothing it started may outlive the test
            for child in psutil.Process(server.pid).children(recursive=True):
                child.kill()
            os.kill(server.pid, signal.SIGKILL)
