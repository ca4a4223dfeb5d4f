"""kill -9 of the indexing process, at the worst moment and at a random one:
the next run repairs everything and the stores agree with the folder."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

from imgsearch.samples import Photo
from tests.conftest import write_folder
from tests.faults.conftest import ROOT, assert_consistent, index_command, run_index, subprocess_env

COLLECTION = "crash"
PHOTOS, CHUNK = 64, 16


def catalog_count(database: Path, status: str) -> int:
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as connection:
            return int(connection.execute(
                "SELECT count(*) FROM images WHERE collection = ? AND status = ?", (COLLECTION, status)
            ).fetchone()[0])
    except sqlite3.OperationalError:  # not created yet
        return 0


def test_kill_9_mid_run_then_the_next_run_repairs(
    tmp_path: Path, photos: list[Photo], weights: Path, prefect_api_url: str
) -> None:
    files = write_folder(tmp_path / "photos", photos, PHOTOS, seed=11)
    data = tmp_path / "data"
    env = subprocess_env(DATA_DIR=str(data), DEFAULT_TABLE=COLLECTION, PREFECT_API_URL=prefect_api_url)
    database = data / "catalog.db"
    args = ("--chunk-size", str(CHUNK))

    # 1. Killed at the worst moment: chunk 2's vectors are in Milvus, its rows still pending.
    first = run_index(tmp_path / "photos", {**env, "IMGSEARCH_FAILPOINT": "between-stores@2"}, *args)
    assert first.returncode == -signal.SIGKILL, first.stderr[-2000:]
    committed = catalog_count(database, "indexed")
    assert committed % CHUNK == 0 and CHUNK <= committed < PHOTOS
    assert catalog_count(database, "pending") == PHOTOS - committed, "the catalog shows what is left"

    # 2. Killed from outside at whatever point it has reached once one more chunk committed.
    with open(tmp_path / "second.log", "wb") as log:
        second = subprocess.Popen(index_command(tmp_path / "photos", *args), env=env, cwd=ROOT,
                                  stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 240
        while catalog_count(database, "indexed") <= committed:
            assert second.poll() is None, (tmp_path / "second.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "the second run committed nothing"
            time.sleep(0.05)
        second.send_signal(signal.SIGKILL)
        assert second.wait(timeout=30) == -signal.SIGKILL

    # 3. The next run finishes, and nothing is lost, doubled or orphaned.
    third = run_index(tmp_path / "photos", env, *args)
    assert third.returncode == 0, third.stderr[-3000:]
    summary = json.loads(third.stdout)
    assert summary["failed"] == 0 and summary["indexed"] + summary["skipped"] == PHOTOS
    assert_consistent(f"sqlite:///{database}", str(data / "milvus.db"), COLLECTION, files)
