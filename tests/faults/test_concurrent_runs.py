"""Two index runs of the same folder at the same time, in two processes sharing
a milvus-lite server and the SQLite catalog: no duplicates, counts right."""

from __future__ import annotations

import json
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

from imgsearch.samples import Photo
from imgsearch.writer_lock import CollectionWriterLock
from tests.backends import MilvusLiteServer
from tests.conftest import write_folder
from tests.faults.conftest import ROOT, assert_consistent, index_command, subprocess_env

COLLECTION = "twice"
PHOTOS = 48


def flow_runs(name: str) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    with get_client(sync_client=True) as client:
        return client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[name])))


def test_two_runs_of_one_folder_at_once(
    tmp_path: Path, photos: list[Photo], weights: Path, prefect_api_url: str,
    milvus_server: MilvusLiteServer,
) -> None:
    files = write_folder(tmp_path / "photos", photos, PHOTOS, seed=41)
    data = tmp_path / "data"
    env = subprocess_env(DATA_DIR=str(data), DEFAULT_TABLE=COLLECTION, PREFECT_API_URL=prefect_api_url,
                         MILVUS_URI=milvus_server.uri)
    # Started together, one run can still finish before the other starts its flow (a run of 48
    # photos takes 2 s, a process start 2-6 s). Milvus Lite's writer lock, held here, keeps both
    # before their first write until both flow runs are running: they overlap however they start.
    with CollectionWriterLock(milvus_server.uri).held(COLLECTION):
        runs = [subprocess.Popen(index_command(tmp_path / "photos", "--chunk-size", "8"), env=env, cwd=ROOT,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for _ in range(2)]
        deadline = time.monotonic() + 240
        while sum(r.state_type == "RUNNING" for r in flow_runs("index photos into twice")) < 2:
            assert all(run.poll() is None for run in runs), "a run ended while the other had not started"
            assert time.monotonic() < deadline, "the two runs did not both start within 4 minutes"
            time.sleep(0.2)
    released = datetime.now(UTC)
    outputs = [run.communicate(timeout=300) for run in runs]
    for run, (out, err) in zip(runs, outputs):
        assert run.returncode == 0, err[-3000:]
    summaries = [json.loads(out) for out, _ in outputs]
    assert all(s["failed"] == 0 and s["indexed"] + s["skipped"] == PHOTOS for s in summaries)
    runs = flow_runs("index photos into twice")
    assert len(runs) == 2 and max(r.start_time for r in runs) < released < min(r.end_time for r in runs), (
        f"the two runs did not overlap in time: {[(str(r.start_time), str(r.end_time)) for r in runs]}")
    assert_consistent(f"sqlite:///{data / 'catalog.db'}", milvus_server.uri, COLLECTION, files)
