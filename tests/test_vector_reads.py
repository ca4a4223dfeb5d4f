"""Reading a whole collection back in id slices (`imgsearch.vector_reads`), on real Milvus."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from imgsearch import vector_reads
from imgsearch.vectors import VECTOR_FIELD, VectorStore, image_id


def unit(rows: int, seed: int) -> np.ndarray:
    values = np.random.default_rng(seed).normal(size=(rows, 2048)).astype(np.float32)
    return values / np.linalg.norm(values, axis=1, keepdims=True)


def stored(store: VectorStore, name: str) -> dict[int, tuple[np.ndarray, list[str], str]]:
    """Ids as the product makes them (hashes spread over 53 bits), small ones as tests and the
    scale bench use (0, 1, 2, ...), and a few at the top of the id space."""
    ids = ([image_id(f"/photos/{n}.jpg") for n in range(150)] + list(range(60))
           + [2**53 - 1 - n for n in range(5)])
    vectors = unit(len(ids), seed=1)
    labels = [[f"l{n % 3}"] for n in range(len(ids))]
    folders = [f"/photos/{n % 4}" for n in range(len(ids))]
    store.drop(name)
    for start in range(0, len(ids), 50):
        part = slice(start, start + 50)
        store.upsert(name, ids[part], vectors[part], labels[part], folders[part])
    return {image: (vectors[n], labels[n], folders[n]) for n, image in enumerate(ids)}


def test_every_row_comes_once_ascending_by_id_in_slices_of_at_most_the_batch(any_milvus: str) -> None:
    store = VectorStore(any_milvus)
    expected = stored(store, "reads")
    seen: list[int] = []
    for ids, vectors, labels, folders in store.iter_rows("reads", batch=16):
        assert 0 < len(ids) <= 16 and vectors.dtype == np.float32 and vectors.shape == (len(ids), 2048)
        for n, image in enumerate(ids):
            vector, label_list, folder = expected[image]
            assert np.array_equal(vectors[n], vector) and labels[n] == label_list and folders[n] == folder
        seen += ids
    assert seen == sorted(expected), "every id once, ascending"
    assert list(store.iter_ids("reads", batch=1000)) == sorted(expected)
    vector_ids = [image for ids, _ in store.iter_vectors("reads") for image in ids]
    assert vector_ids == sorted(expected)
    store.delete("reads", sorted(expected)[:10])
    assert list(store.iter_ids("reads", batch=7)) == sorted(expected)[10:], "a delete just made is seen"
    store.drop("reads")
    assert list(store.iter_ids("reads")) == []


def test_a_range_grown_past_one_query_is_fetched_in_halves(any_milvus: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows written between a range's count and its fetch can fill one query (16,384 rows): the
    range is then fetched again in halves, so that none is lost."""
    store = VectorStore(any_milvus)
    expected = stored(store, "grown")
    monkeypatch.setattr(vector_reads, "MAX_LIMIT", 8)
    asked: list[str] = []

    def fetch(expression: str, limit: int) -> list[dict[str, object]]:
        asked.append(expression)
        return list(store.client.query("grown", filter=expression, output_fields=["id", VECTOR_FIELD], limit=limit,
                                       consistency_level="Session"))  # Strong would cost ~200 ms a query

    rows = vector_reads.fetch_slice(fetch, 0, vector_reads.ID_LIMIT)
    assert [int(row["id"]) for row in rows] == sorted(expected)
    assert len(asked) > len(expected) / 8, "the whole range was fetched in many smaller ones"
    store.drop("grown")


def test_a_reader_that_stops_early_leaves_no_work_behind(any_milvus: str) -> None:
    store = VectorStore(any_milvus)
    expected = stored(store, "early")
    first = next(iter(store.iter_ids("early", batch=8)))
    assert first == min(expected)
    assert [thread for thread in threading.enumerate() if thread.name.startswith("milvus-read")] == []
    store.drop("early")


def test_a_slice_whose_fetch_fails_is_asked_again_and_a_lasting_failure_is_raised(
        any_milvus: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A standalone compacting a big load can fail a read and answer it a little later: the
    reader tries each slice again after a pause, a bounded number of times, and loses no row."""
    store = VectorStore(any_milvus)
    expected = stored(store, "flaky")
    monkeypatch.setattr(vector_reads, "PAUSES", (0.01, 0.01))
    failures: dict[str, int] = {}

    def query(expression: str) -> list[dict[str, object]]:
        return list(store.client.query("flaky", filter=expression, output_fields=["id"], limit=vector_reads.MAX_LIMIT,
                                       consistency_level="Session"))

    def count(expression: str, first: bool) -> int:
        return len(query(expression))

    def fetch(expression: str, limit: int) -> list[dict[str, object]]:
        failures[expression] = failures.get(expression, 0) + 1
        if failures[expression] <= 2:  # every slice fails twice, then is answered
            raise ConnectionError("PayloadReader.cpp:51 => file to read file")
        return query(expression)

    read = [int(row["id"]) for rows in vector_reads.read_all(count, fetch, 40) for row in rows]
    assert read == sorted(expected)
    assert len(failures) > 3 and set(failures.values()) == {3}

    def never(expression: str, limit: int) -> list[dict[str, object]]:
        failures[expression] = failures.get(expression, 0) + 1
        raise ConnectionError("gone")

    failures.clear()
    with pytest.raises(ConnectionError, match="gone"):
        list(vector_reads.read_all(count, never, 40))
    assert max(failures.values()) == 3, "tried once and again after each pause, no more"
    store.drop("flaky")


def test_a_reader_closed_while_a_slice_waits_to_be_tried_again_stops_at_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A process interrupted while a failed slice waits out its pause (up to 30 s) must not wait:
    closing the reader wakes the waiting slice, which gives up."""
    import time

    monkeypatch.setattr(vector_reads, "PAUSES", (30.0, 30.0, 30.0))
    failed = threading.Event()

    def count(expression: str, first: bool) -> int:
        return 100 if "id >= 0 and" in expression and "id < 9223372036854775807" in expression else 10

    def fetch(expression: str, limit: int) -> list[dict[str, object]]:
        if "id >= 0 and" in expression:
            return [{"id": 0}]
        failed.set()
        raise ConnectionError("PayloadReader.cpp:51 => file to read file")

    reader = vector_reads.read_all(count, fetch, 40)
    assert [int(row["id"]) for row in next(reader)] == [0]
    assert failed.wait(10), "a later slice failed and waits to be tried again"
    started = time.monotonic()
    reader.close()  # as an interrupted caller's generator is closed
    assert time.monotonic() - started < 5, "closing did not wait out the 30 s pause"
    assert [thread for thread in threading.enumerate() if thread.name.startswith("milvus-read")] == []


@pytest.mark.parametrize("server", ["milvus-standalone"])
def test_vectors_read_back_from_an_index_without_them_are_still_there_after_a_reload(
        server: str, milvus_standalone: str) -> None:
    """IVF_SQ8 keeps no raw vectors, so Milvus 2.3 serves them from the segment's binlogs through
    its chunk cache, which on local storage with an absolute path truncated and unlinked the binlog
    it read (`benchmarks.milvus_backends.start_standalone`): a read back, then a reload (as after a
    restart), and the second read failed for good. Both reads return every vector."""
    import time

    store = VectorStore(milvus_standalone, index_type="IVF_SQ8")
    name = "sq8_reads"
    store.drop(name)
    vectors = unit(3000, seed=3)
    for start in range(0, 3000, 1000):
        ids = list(range(start + 1, start + 1001))
        store.upsert(name, ids, vectors[start:start + 1000], [["x"]] * 1000, ["/f"] * 1000)
    store.client.flush(name)
    deadline = time.monotonic() + 120
    while (described := store.client.describe_index(name, VECTOR_FIELD)).get("indexed_rows", 0) < 3000:
        assert time.monotonic() < deadline, described
        time.sleep(0.5)
    assert described["index_type"] == "IVF_SQ8"
    for _ in range(2):
        store.client.release_collection(name)
        store.client.load_collection(name)  # the sealed segment now loads with its index, not its rows
        ids, parts = [], []
        for batch_ids, batch in store.iter_vectors(name):
            ids += batch_ids
            parts.append(batch)
        assert ids == list(range(1, 3001)) and np.allclose(np.concatenate(parts), vectors, atol=1e-6)
    store.drop(name)
    store.close()
