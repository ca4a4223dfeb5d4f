"""16 clients for 30 s of mixed search / similar / thumbnail traffic (locust, on
loopback) against `imgsearch serve`, while an index run of the same server
writes into the collection being queried: no failed request, and the run
completes with the counts right. Latencies go to tests/artifacts/load.json;
BENCHMARKS.md's figures come from a minute of it (IMGSEARCH_LOAD_SECONDS=60)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from benchmarks.load import run_load
from imgsearch.processes import free_port, wait_until_healthy
from imgsearch.discover import canonical_path
from imgsearch.samples import Photo, recompressed_copy
from imgsearch.vectors import image_id
from tests.conftest import ARTIFACTS, write_folder
from tests.faults.conftest import ROOT, subprocess_env

COLLECTION = "loaded"
INDEXED, WRITTEN_DURING_LOAD = 60, 300
USERS = 16
SECONDS = int(os.environ.get("IMGSEARCH_LOAD_SECONDS", "30"))  # an index run of 300 photos overlaps 30 s


def index(url: str, folder: Path) -> str:
    started = httpx.post(f"{url}/api/index", json={"path": str(folder), "collection": COLLECTION}, timeout=60)
    assert started.status_code == 202, started.text
    return str(started.json()["run_id"])


def wait_for(url: str, run_id: str, seconds: float = 300) -> dict:
    deadline = time.monotonic() + seconds
    while (run := httpx.get(f"{url}/api/index/{run_id}", timeout=60).json())["state"] in (
        "PENDING", "SCHEDULED", "RUNNING"
    ):
        assert time.monotonic() < deadline, run
        time.sleep(0.5)
    return run


def test_sixteen_clients_for_half_a_minute_while_indexing(
    tmp_path: Path, photos: list[Photo], weights: Path, prefect_api_url: str
) -> None:
    first = write_folder(tmp_path / "first", photos, INDEXED, seed=61)
    write_folder(tmp_path / "more", photos, WRITTEN_DURING_LOAD, seed=62)
    queries = tmp_path / "queries"
    queries.mkdir()
    for number, path in enumerate(first[:12]):
        recompressed_copy(path, queries / f"q{number}.jpg", scale=0.7, quality=60)

    port = free_port()
    env = subprocess_env(DATA_DIR=str(tmp_path / "data"), PREFECT_API_URL=prefect_api_url,
                         DEFAULT_TABLE=COLLECTION)
    with open(tmp_path / "serve.log", "wb") as log:
        server = subprocess.Popen([sys.executable, "-m", "cli.main", "serve", "--port", str(port)],
                                  env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(f"{url}/health", server)
        assert wait_for(url, index(url, tmp_path / "first"))["state"] == "COMPLETED"

        writing = index(url, tmp_path / "more")
        report = run_load(url, COLLECTION, [image_id(canonical_path(p)) for p in first], queries,
                          tmp_path / "load", users=USERS, seconds=SECONDS)
        run = httpx.get(f"{url}/api/index/{writing}", timeout=60).json()
        report["index_run_state_when_load_ended"] = run["state"]
        finished = wait_for(url, writing)
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "load.json").write_text(json.dumps(report, indent=2))

        assert report["total"]["failures"] == 0 and not report["failures"], report["failures"][:5]
        assert report["total"]["requests"] > 300, report["total"]
        assert set(report["routes"]) == {"/api/search", "/api/images/{id}/similar",
                                         "/api/images/{id}/thumbnail"}
        assert finished["state"] == "COMPLETED", finished
        assert httpx.get(f"{url}/api/collections/{COLLECTION}", timeout=60).json()["count"] == (
            INDEXED + WRITTEN_DURING_LOAD)
    finally:
        server.terminate()
        server.wait(timeout=60)
    print(json.dumps({"total": report["total"], "routes": report["routes"],
                      "index run when load ended": report["index_run_state_when_load_ended"]}, indent=1),
          file=sys.stderr)
