"""`imgsearch up --detach` / `down` end to end: every service a real process on loopback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from imgsearch.processes import free_port
from imgsearch.samples import Photo, recompressed_copy
from tests.conftest import seed_prefect_home, write_folder
from tests.test_deployments import clean_env

BIN = Path(sys.executable).parent
pytestmark = pytest.mark.usefixtures("weights")


def group_members(group: int) -> list[psutil.Process]:
    members = []
    for process in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(process.pid) == group and process.status() != psutil.STATUS_ZOMBIE:
                members.append(process)
        except (ProcessLookupError, psutil.Error):
            pass
    return members


def test_up_index_search_down(tmp_path: Path, photos: list[Photo], prefect_home_template: Path) -> None:
    paths = write_folder(tmp_path / "photos", photos, 8)
    (tmp_path / "watched").mkdir()
    data = tmp_path / "data"
    seed_prefect_home(prefect_home_template, data)
    prefect, milvus, app = free_port(), free_port(), free_port()
    env = clean_env(DATA_DIR=str(data))
    started = subprocess.run(
        [str(BIN / "imgsearch"), "up", "--detach", "--prefect-port", str(prefect), "--milvus-port", str(milvus),
         "--port", str(app), "--sync-path", str(tmp_path / "photos"), "--watch", str(tmp_path / "watched")],
        capture_output=True, text=True, env=env, timeout=400, check=False)
    assert started.returncode == 0, started.stderr[-2000:]
    groups = json.loads((data / "stack.json").read_text())
    assert list(groups) == ["prefect", "milvus", "search", "runner", "watch"]
    url = f"http://127.0.0.1:{app}"
    try:
        run = httpx.post(f"{url}/api/index", json={"path": str(tmp_path / "photos"), "collection": "stacked"},
                         timeout=60)
        assert run.status_code == 202, run.text
        run_id = run.json()["run_id"]
        deadline = time.monotonic() + 300
        while httpx.get(f"{url}/api/index/{run_id}", timeout=30).json()["state"] in ("PENDING", "RUNNING"):
            assert time.monotonic() < deadline
            time.sleep(1)
        ui = httpx.get(f"http://127.0.0.1:{prefect}/", timeout=30)
        assert ui.status_code == 200 and "<html" in ui.text.lower(), "the Prefect UI is served"
        api = f"http://127.0.0.1:{prefect}/api"
        flow_run = httpx.get(f"{api}/flow_runs/{run_id}", timeout=30).json()
        assert flow_run["state_type"] == "COMPLETED" and flow_run["name"] == "index photos into stacked"
        deployments = httpx.post(f"{api}/deployments/filter", json={}, timeout=30).json()
        by_name = {d["name"]: d for d in deployments}
        assert set(by_name) == {"index", "sync", "reconcile"}
        assert by_name["sync"]["schedules"][0]["schedule"]["cron"] == "0 2 * * *"

        query = recompressed_copy(paths[5], tmp_path / "q.jpg", scale=0.7, quality=50).read_bytes()
        found = httpx.post(f"{url}/api/search", params={"collection": "stacked", "top_k": 3},
                           files={"image": ("q.jpg", query)}, timeout=60).json()
        assert found["results"][0]["path"] == str(paths[5])

        # `--watch`: a photo copied into the folder becomes the top hit of its own search.
        copied = tmp_path / "watched" / "copied.jpg"
        shutil.copy(paths[6], copied)
        deadline = time.monotonic() + 120
        while True:
            found = httpx.post(f"{url}/api/search", params={"top_k": 1},
                               files={"image": ("q.jpg", copied.read_bytes())}, timeout=60)
            # Until the watcher's batch lands, the watched collection is missing (404) or empty.
            top = found.json()["results"][:1] if found.status_code == 200 else []
            if top and top[0]["path"] == str(copied):
                break
            assert time.monotonic() < deadline, (data / "logs" / "watch.log").read_text()[-3000:]
            time.sleep(0.5)
        # The run's name is set as it starts, which may reach the server after the photo is searchable.
        deadline = time.monotonic() + 60
        while not (runs := httpx.post(f"{api}/flow_runs/filter",
                                      json={"flow_runs": {"name": {"like_": "watch watched"}}}, timeout=30).json()):
            assert time.monotonic() < deadline, "no watch run in the Prefect API"
            time.sleep(0.5)
        assert [run["name"] for run in runs] == ["watch watched (1 changed) into milvus_img_search"], runs
    finally:
        stopped = subprocess.run([str(BIN / "imgsearch"), "down"], capture_output=True, text=True, env=env,
                                 timeout=200, check=False)
    assert stopped.returncode == 0, stopped.stderr
    assert "did not stop" not in stopped.stderr, "a service needed SIGKILL: " + stopped.stderr
    assert not (data / "stack.json").exists()
    assert all(group_members(group) == [] for group in groups.values()), "a process outlived down"
    assert (data / "logs" / "search.log").stat().st_size > 0
