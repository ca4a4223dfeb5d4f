"""Milvus or MariaDB stopped in the middle of an index run: a short outage is
ridden out by the chunk tasks' retries; a lasting one fails the run naming the
backend, leaves the rest `pending` in the catalog, and the next run finishes."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from imgsearch.resources import release_stores
from imgsearch.catalog import INDEXED, PENDING, Catalog
from imgsearch.samples import Photo
from imgsearch.settings import get_settings
from tests.backends import MilvusLiteServer, PrivateMariaDB, ServerProcess
from tests.conftest import write_folder
from tests.faults.conftest import assert_consistent

COLLECTION = "outage"
PHOTOS, CHUNK = 64, 16


@dataclass
class Stack:
    milvus: MilvusLiteServer
    mariadb: PrivateMariaDB

    def server(self, backend: str) -> ServerProcess:
        return self.milvus if backend == "milvus" else self.mariadb


@pytest.fixture
def stack(
    milvus_server: MilvusLiteServer, mariadb: PrivateMariaDB, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, prefect_api: None, weights: Path,
) -> Iterator[Stack]:
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MILVUS_URI", milvus_server.uri)
    monkeypatch.setenv("DATABASE_URL", mariadb.url)
    monkeypatch.setenv("DEFAULT_TABLE", COLLECTION)
    get_settings.cache_clear()
    yield Stack(milvus_server, mariadb)
    release_stores()
    get_settings.cache_clear()


class Outage(threading.Thread):
    """Once the run has committed its first chunk, stop `server` (SIGKILL for
    Milvus, a clean shutdown for MariaDB); start it again after `seconds`, or never."""

    def __init__(self, server: ServerProcess, database_url: str, seconds: float | None) -> None:
        super().__init__(daemon=True)
        self.server, self.seconds = server, seconds
        self.catalog = Catalog(database_url)
        self.indexed_at_stop = -1
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            deadline = time.monotonic() + 240
            while (count := self.catalog.count(COLLECTION)) < CHUNK:
                assert time.monotonic() < deadline, "no chunk committed"
                time.sleep(0.05)
            self.indexed_at_stop = count
            self.server.stop(kill=isinstance(self.server, MilvusLiteServer))
            if self.seconds is not None:
                time.sleep(self.seconds)
                self.server.start()
        except BaseException as error:  # noqa: BLE001 - reported by the test
            self.error = error
        finally:
            self.catalog.close()


def retried_chunks(flow_run_id: object) -> int:
    """How many chunk task runs of the flow run needed more than one attempt."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return sum(1 for run in runs if run.name.startswith("index chunk") and run.run_count > 1)


@pytest.mark.parametrize("backend", ["milvus", "mariadb"])
def test_a_backend_restarted_mid_run_is_ridden_out(
    backend: str, stack: Stack, tmp_path: Path, photos: list[Photo]
) -> None:
    from flows.index import index_images

    files = write_folder(tmp_path / "photos", photos, PHOTOS, seed=21)
    outage = Outage(stack.server(backend), stack.mariadb.url, seconds=3)
    outage.start()
    # Retries after 0.4, 2 and 10 s, then 50: the restarted server is back within the first three
    # on a fast machine, and a slow one still gets the fourth.
    state = index_images(path=str(tmp_path / "photos"), chunk_size=CHUNK, retries=4,
                         retry_delay_seconds=0.4, return_state=True)
    outage.join(timeout=60)
    assert outage.error is None, outage.error
    assert 0 < outage.indexed_at_stop < PHOTOS, "the outage fell inside the run"
    summary = state.result()
    assert summary.indexed == PHOTOS and not summary.broken_chunks
    assert retried_chunks(state.state_details.flow_run_id) >= 1
    release_stores()
    assert_consistent(stack.mariadb.url, stack.milvus.uri, COLLECTION, files)


@pytest.mark.parametrize(("backend", "named"), [("milvus", "Milvus (http://127.0.0.1:"),
                                                 ("mariadb", "the database (mysql at 127.0.0.1:")])
def test_a_lasting_outage_fails_the_run_naming_the_backend_then_the_next_run_finishes(
    backend: str, named: str, stack: Stack, tmp_path: Path, photos: list[Photo]
) -> None:
    from flows.index import IndexRunError, index_images

    files = write_folder(tmp_path / "photos", photos, PHOTOS, seed=22)
    outage = Outage(stack.server(backend), stack.mariadb.url, seconds=None)
    outage.start()
    with pytest.raises(IndexRunError) as raised:
        index_images(path=str(tmp_path / "photos"), chunk_size=CHUNK, retries=1, retry_delay_seconds=0.5)
    outage.join(timeout=60)
    assert outage.error is None, outage.error
    message = str(raised.value)
    assert "chunks failed after 1 retries" in message and named in message, message

    stack.server(backend).start()
    catalog = Catalog(stack.mariadb.url)
    indexed, pending = catalog.count(COLLECTION, INDEXED), catalog.count(COLLECTION, PENDING)
    catalog.close()
    assert indexed + pending == PHOTOS and pending > 0, "the catalog shows what is left"
    if backend == "milvus":
        assert f"{pending} images are pending in the catalog" in message

    summary = index_images(path=str(tmp_path / "photos"), chunk_size=CHUNK)
    assert not summary.broken_chunks and summary.indexed + summary.skipped == PHOTOS
    release_stores()
    assert_consistent(stack.mariadb.url, stack.milvus.uri, COLLECTION, files)
