"""The index flow under a real, temporary Prefect API (prefect_test_harness)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from imgsearch.samples import Photo, make_voc_sample
from imgsearch.settings import get_settings
from tasks import stores
from tests.conftest import sealed_rows, write_folder

pytestmark = pytest.mark.usefixtures("prefect_api", "weights")


@pytest.fixture(params=["sqlite", "mysql", "milvus-standalone"])
def backend(request: pytest.FixtureRequest, env: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Milvus Lite + SQLite; Milvus Lite + MariaDB; a Milvus standalone server + SQLite.
    (The Dask runner, on a milvus-lite server: tests/test_dask.py.)"""
    if request.param == "milvus-standalone":
        monkeypatch.setenv("MILVUS_URI", request.getfixturevalue("milvus_standalone"))
        monkeypatch.setenv("DEFAULT_TABLE", f"flow_{abs(hash(str(env))) % 10**8}")
        get_settings.cache_clear()
    if request.param == "mysql":
        url = request.getfixturevalue("mysql_server_url")
        monkeypatch.setenv("DATABASE_URL", url)
        monkeypatch.setenv("DEFAULT_TABLE", f"flow_{os.getpid()}_{abs(hash(str(env))) % 10**6}")
        get_settings.cache_clear()
    return request.param


def ids_of_both_stores(collection: str) -> tuple[list[int], list[int]]:
    catalog_ids = sorted(stores.catalog().ids_with_status(collection, ["indexed"]))
    milvus_ids = sorted(stores.vector_store().iter_ids(collection))
    return catalog_ids, milvus_ids


def test_index_twice_then_change_one_file(backend: str, tmp_path: Path, photos: list[Photo]) -> None:
    from flows.index import index_images

    collection = get_settings().default_table
    paths = write_folder(tmp_path / "photos", photos, 30)
    (tmp_path / "photos" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")

    first = index_images(path=str(tmp_path / "photos"), chunk_size=8)
    assert (first.found, first.indexed, first.failed) == (31, 30, 1)
    assert first.failures[0][0].endswith("broken.jpg")
    catalog_ids, milvus_ids = ids_of_both_stores(collection)
    assert len(milvus_ids) == len(set(milvus_ids)) == 30 and catalog_ids == milvus_ids

    second = index_images(path=str(tmp_path / "photos"), chunk_size=8)
    assert (second.indexed, second.skipped) == (0, 30)
    assert ids_of_both_stores(collection) == (catalog_ids, milvus_ids)

    write_folder(tmp_path / "other", photos[5:], 1)
    os.replace(next((tmp_path / "other").rglob("*.jpg")), paths[7])
    third = index_images(path=str(tmp_path / "photos"), chunk_size=8)
    assert (third.embedded, third.skipped) == (1, 29)
    assert ids_of_both_stores(collection) == (catalog_ids, milvus_ids)


def test_voc_tree_labels_reach_both_stores(env: Path, tmp_path: Path, photos: list[Photo]) -> None:
    from flows.index import index_images

    make_voc_sample(tmp_path, 12, get_settings().cache_dir, [f"class{i}" for i in range(1000)])
    summary = index_images(path=str(tmp_path), collection="voc", chunk_size=5)
    assert summary.indexed == 12
    record = stores.catalog().by_path("voc", str(tmp_path / "VOCdevkit/VOC2012/JPEGImages/2012_000001.jpg"))
    assert record is not None and record.labels == [f"class{photos[0].class_id}"]
    vector = stores.vector_store().vectors("voc", [record.id])[record.id]
    hits = stores.vector_store().search("voc", vector[None], 20, label=f"class{photos[0].class_id}")[0]
    assert {hit.id for hit in hits} == {record.id}
    # The run sealed what it wrote: Milvus Lite, still open in this process, holds all 12 in
    # segments, none in its memtable (which it searches row by row).
    assert sealed_rows("voc") == 12


def test_a_chunk_that_fails_once_is_retried(
    env: Path, tmp_path: Path, photos: list[Photo], monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.index import index_images
    from imgsearch import indexing
    from imgsearch.vectors import VectorStoreError

    write_folder(tmp_path / "p", photos, 9)
    real = indexing.index_chunk
    calls: list[int] = []

    def flaky(images: list, *args: object, **kwargs: object) -> indexing.ChunkReport:
        calls.append(len(images))
        if len(calls) == 1:
            raise VectorStoreError("Milvus could not upsert: simulated outage")
        return real(images, *args, **kwargs)

    monkeypatch.setattr(indexing, "index_chunk", flaky)
    summary = index_images(path=str(tmp_path / "p"), chunk_size=3, retry_delay_seconds=0.05)
    assert summary.indexed == 9 and len(calls) == 4
    assert stores.vector_store().count(get_settings().default_table) == 9


def test_a_lasting_outage_fails_the_run_clearly(
    env: Path, tmp_path: Path, photos: list[Photo], monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.index import IndexRunError, index_images
    from imgsearch import indexing
    from imgsearch.vectors import VectorStoreError

    write_folder(tmp_path / "p", photos, 2)

    def down(*args: object, **kwargs: object) -> None:
        raise VectorStoreError("Milvus could not upsert: connection refused")

    monkeypatch.setattr(indexing, "index_chunk", down)
    with pytest.raises(IndexRunError, match="1 of 1 chunks failed after 1 retries.*connection refused"):
        index_images(path=str(tmp_path / "p"), retries=1, retry_delay_seconds=0.01)


def test_a_seal_that_fails_costs_speed_not_the_run(
    env: Path, tmp_path: Path, photos: list[Photo], monkeypatch: pytest.MonkeyPatch,
) -> None:
    import time

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    import flows.index
    from imgsearch.vectors import VectorStore, VectorStoreError

    paths = write_folder(tmp_path / "p", photos, 3)
    tries: list[str] = []

    def down(self: VectorStore, name: str) -> None:
        tries.append(name)
        raise VectorStoreError("Milvus could not seal: connection refused")

    monkeypatch.setattr(VectorStore, "seal", down)
    monkeypatch.setattr(flows.index, "seal_vectors", flows.index.seal_vectors.with_options(retry_delay_seconds=0))
    state = flows.index.index_images(path=str(tmp_path / "p"), return_state=True)
    summary = state.result()
    collection = get_settings().default_table
    assert summary.indexed == 3 and stores.vector_store().count(collection) == 3
    assert tries == [collection] * 3, "tried, then retried twice"
    # The warning is in the run's log, as the Prefect UI shows it (logs reach the API asynchronously).
    wanted = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[state.state_details.flow_run_id]))
    deadline = time.monotonic() + 60
    with get_client(sync_client=True) as client:
        while not any(f"vectors of {collection} not sealed" in entry.message and "connection refused" in entry.message
                      for entry in client.read_logs(log_filter=wanted)):
            assert time.monotonic() < deadline, "the run's log does not say that its vectors were not sealed"
            time.sleep(0.5)
    # reconcile re-embeds and seals the same way: a seal that fails is not a failed repair.
    from flows.sync import reconcile
    from imgsearch.vectors import image_id

    stores.vector_store().delete(collection, [image_id(str(paths[0]))])
    assert reconcile()["to_reindex"] == 1 and stores.vector_store().count(collection) == 3
    assert tries == [collection] * 6


def test_run_publishes_progress_and_summary_artifacts(
    env: Path, tmp_path: Path, photos: list[Photo]
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.index import index_images

    from tasks.progress import ProgressEvent, reporting_to

    write_folder(tmp_path / "p", photos, 4)
    (tmp_path / "p" / "bad.png").write_text("nope")
    events: list[ProgressEvent] = []
    with reporting_to(events.append):
        index_images(path=str(tmp_path / "p"), collection="art_test", chunk_size=2)
    # The subscriber passed in saw every chunk land, in order, and only this run.
    assert [e.processed for e in events] == sorted(e.processed for e in events) and events[-1].processed == 5
    assert events[-1].failed == 1 and len({e.run_id for e in events}) == 1
    index_images(path=str(tmp_path / "p"), collection="art_test", chunk_size=2)  # outside the block
    assert len({e.run_id for e in events}) == 1, "a run started outside the block reports nothing to it"

    async def latest(key: str) -> object:
        async with get_client() as client:
            found = await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])), limit=1,
                sort="CREATED_DESC",
            )
            return found[0]

    progress = asyncio.run(latest("index-progress-art-test"))
    assert progress.type == "progress" and float(progress.data) == 100.0
    table = asyncio.run(latest("index-summary-art-test"))
    assert '"indexed"' in str(table.data) or "indexed" in str(table.data)
    failures = asyncio.run(latest("index-failures-art-test"))
    assert "bad.png" in str(failures.data)


def test_chunk_writes_wait_for_a_milvus_write_slot(
    env: Path, tmp_path: Path, photos: list[Photo], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the `milvus-write` limit an operator created, a chunk holds a slot around the stores'
    writes only: with its one slot taken, a run embeds its images, then waits to write. Without
    it (every other test), runs take no slot. On a Prefect API of its own: the session's is shared
    by every test process, whose runs would wait on this slot too."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        _writes_wait_for_a_slot(tmp_path, photos, monkeypatch)


def _writes_wait_for_a_slot(tmp_path: Path, photos: list[Photo], monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.concurrency.sync import concurrency

    from flows.index import index_images
    from imgsearch import indexing
    from tasks.indexing import MILVUS_WRITE_LIMIT
    from tasks.prefect_api import concurrency_limit_active

    assert not concurrency_limit_active(MILVUS_WRITE_LIMIT)
    with get_client(sync_client=True) as client:
        client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=MILVUS_WRITE_LIMIT, limit=1))
    try:
        assert concurrency_limit_active(MILVUS_WRITE_LIMIT)
        write_folder(tmp_path / "p", photos, 4)
        embedded, wrote = threading.Event(), threading.Event()
        encoder = stores.encoder()
        real_embed, real_write = encoder.embed, indexing._write

        def embed(*args: object, **kwargs: object) -> object:
            vectors = real_embed(*args, **kwargs)  # type: ignore[arg-type]
            embedded.set()
            return vectors

        def write(*args: object, **kwargs: object) -> None:
            wrote.set()
            real_write(*args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(encoder, "embed", embed)
        monkeypatch.setattr(indexing, "_write", write)
        collection = get_settings().default_table
        outcome: list[object] = []
        run = threading.Thread(target=lambda: outcome.append(index_images(path=str(tmp_path / "p"), chunk_size=4)))
        with concurrency(MILVUS_WRITE_LIMIT, occupy=1):
            run.start()
            assert embedded.wait(120), "the run never reached the model"
            # Writing takes milliseconds once allowed; a second without it shows the wait.
            assert not wrote.wait(1.0), "a chunk wrote while the only write slot was taken"
            assert run.is_alive() and stores.catalog().count(collection, "indexed") == 0
        run.join(120)
        assert wrote.is_set() and outcome and outcome[0].indexed == 4  # type: ignore[attr-defined]
    finally:
        with get_client(sync_client=True) as client:
            client.delete_global_concurrency_limit_by_name(MILVUS_WRITE_LIMIT)


def test_a_run_with_nothing_to_embed_still_refuses_another_encoders_collection(
        env: Path, tmp_path: Path, photos: list[Photo], monkeypatch: pytest.MonkeyPatch) -> None:
    """A collection made with another pooling or precision (the default changed, say): its
    files are unchanged, but they are not indexed for this encoder, so the run says so."""
    from flows.index import index_images
    from imgsearch import vectors
    from imgsearch.vectors import EncoderMismatch

    monkeypatch.setattr(vectors, "ENCODER_CHECK_SECONDS", 0.0)  # as if the record changed a while ago

    collection = get_settings().default_table
    write_folder(tmp_path / "photos", photos, 3)
    assert index_images(path=str(tmp_path / "photos")).indexed == 3
    stores.vector_store().client.alter_collection_properties(
        collection, properties={"imgsearch.encoder": "resnet50/avg/dynamic"})
    with pytest.raises(EncoderMismatch, match="holds vectors of resnet50/avg/dynamic.*POOLING=avg"):
        index_images(path=str(tmp_path / "photos"))
