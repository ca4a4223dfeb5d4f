from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from imgsearch import vector_index
from imgsearch.vectors import ID_BITS, EncoderMismatch, VectorStore, VectorStoreError, image_id


def unit(rows: int, seed: int = 0) -> np.ndarray:
    values = np.random.default_rng(seed).normal(size=(rows, 2048)).astype(np.float32)
    return values / np.linalg.norm(values, axis=1, keepdims=True)


def test_ids_are_deterministic_positive_and_json_safe() -> None:
    assert image_id("/a/b.jpg") == image_id("/a/b.jpg") != image_id("/a/B.jpg")
    ids = {image_id(f"/photos/{n}.jpg") for n in range(20000)}
    assert len(ids) == 20000 and all(0 <= i < 2**ID_BITS <= 2**53 for i in ids)


def test_upsert_twice_keeps_one_row_per_id(tmp_path: Path) -> None:
    store = VectorStore(str(tmp_path / "m.db"))
    vectors = unit(50)
    ids = [image_id(f"/x/{n}.jpg") for n in range(50)]
    labels = [["cat"] if n % 2 else ["dog", "person"] for n in range(50)]
    store.upsert("c", ids, vectors, labels, ["/x"] * 50)
    store.upsert("c", ids, vectors, labels, ["/x"] * 50)
    assert store.count("c") == 50
    assert sorted(store.iter_ids("c", batch=7)) == sorted(ids)
    hits = store.search("c", vectors[3:4], top_k=5)[0]
    assert hits[0].id == ids[3] and hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert len(store.search("c", vectors[:1], top_k=50)[0]) == 50, "top_k is honoured exactly"
    dogs = store.search("c", vectors[3:4], top_k=50, label="dog")[0]
    assert len(dogs) == 25 and ids[3] not in {h.id for h in dogs}
    assert store.search("c", vectors[:1], top_k=5, label='x" or true or "')[0] == []
    stored = store.vectors("c", ids[:2] + [12345])
    assert set(stored) == set(ids[:2]) and np.allclose(stored[ids[0]], vectors[0], atol=1e-6)
    store.delete("c", ids[:10])
    assert store.count("c") == 40
    store.drop("c")
    assert store.count("c") == 0 and "c" not in store.list_collections()


def test_unknown_collection_is_empty_not_an_error(tmp_path: Path) -> None:
    store = VectorStore(str(tmp_path / "m.db"))
    assert store.count("nothing") == 0
    assert store.search("nothing", unit(1), 3) == [[]]
    assert store.vectors("nothing", [1]) == {}


def test_unreachable_server_is_one_clear_error() -> None:
    with pytest.raises(VectorStoreError, match="Milvus"):
        store = VectorStore("http://127.0.0.1:1")
        store.ping()


def test_labels_with_quotes_and_backslashes_match_exactly(tmp_path: Path) -> None:
    store = VectorStore(str(tmp_path / "m.db"))
    odd = ['say "cheese"', "back\\slash", "it's", "ünïcödé 猫"]
    vectors = unit(len(odd) + 1)
    store.upsert("c", list(range(1, len(odd) + 2)), vectors, [[label] for label in odd] + [["plain"]],
                 ["/f"] * (len(odd) + 1))
    for number, label in enumerate(odd, start=1):
        assert [hit.id for hit in store.search("c", vectors[:1], 10, label=label)[0]] == [number]
    with pytest.raises(ValueError, match="control characters"):
        store.search("c", vectors[:1], 10, label="bad\nlabel")


@pytest.mark.parametrize("index_type", ["IVF_FLAT", "IVF_SQ8", "HNSW"])
def test_other_index_types_are_created_and_searched(tmp_path: Path, index_type: str) -> None:
    store = VectorStore(str(tmp_path / "m.db"), index_type=index_type)
    vectors = unit(300, seed=3)
    store.upsert("c", list(range(300)), vectors, [["x"]] * 300, ["/f"] * 300)
    assert store.client.describe_index("c", "vector")["index_type"] == index_type
    assert store.search("c", vectors[7:8], 5)[0][0].id == 7
    reopened = VectorStore(str(tmp_path / "m2.db"))  # the default (FLAT) does not change old collections
    assert reopened.index_type == "FLAT"


def test_a_collection_remembers_its_encoder_and_refuses_another(any_milvus: str) -> None:
    store = VectorStore(any_milvus)
    name = f"enc_{image_id(any_milvus) % 10**6}"
    store.drop(name)
    store.ensure_collection(name, "resnet50/avg/int8")
    store.upsert(name, [1], unit(1), [[]], ["/x"])
    assert store.recorded_encoder(name) == "resnet50/avg/int8"
    store.check_encoder(name, "resnet50/avg/int8")
    again = VectorStore(any_milvus)  # another process' view: read from Milvus, not remembered
    with pytest.raises(EncoderMismatch, match=r"PRECISION=int8 POOLING=avg") as refused:
        again.ensure_collection(name, "resnet50/avg/fp32")
    assert "\n" not in str(refused.value) and "imgsearch drop" in str(refused.value)
    with pytest.raises(EncoderMismatch):
        again.check_encoder(name, "resnet50/max/int8")
    assert again.count(name) == 1, "a refused encoder wrote nothing"
    store.drop(name)
    again.ensure_collection(name, "resnet50/avg/fp32")  # dropped: a new collection, a new encoder
    assert store.recorded_encoder(name) == "resnet50/avg/fp32"
    store.drop(name)


def test_a_collection_from_before_the_record_adopts_the_first_encoder(tmp_path: Path) -> None:
    store = VectorStore(str(tmp_path / "m.db"))
    store.ensure_collection("old")  # as collections were created before they recorded an encoder
    store.upsert("old", [1], unit(1), [[]], ["/x"])
    assert store.recorded_encoder("old") is None
    store.check_encoder("old", "resnet50/avg/fp32")
    assert VectorStore(str(tmp_path / "m.db")).recorded_encoder("old") == "resnet50/avg/fp32"
    with pytest.raises(EncoderMismatch):
        VectorStore(str(tmp_path / "m.db")).check_encoder("old", "resnet50/avg/int8")


def test_a_collection_from_before_the_record_refuses_a_litert_or_gem_encoder(tmp_path: Path) -> None:
    """Only Keras pooling avg or max existed then: quantised or GeM vectors would mix with them."""
    store = VectorStore(str(tmp_path / "m.db"))
    store.ensure_collection("old")
    for newer in ("resnet50/avg/int8", "resnet50/gem/fp32", "resnet50/gem/dynamic"):
        with pytest.raises(EncoderMismatch, match=r"made before collections recorded.*set PRECISION=fp32 POOLING=avg"):
            store.check_encoder("old", newer)
    assert store.recorded_encoder("old") is None


def test_a_collection_dropped_and_made_again_elsewhere_is_checked_again(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    here, elsewhere = VectorStore(str(tmp_path / "m.db")), VectorStore(str(tmp_path / "m.db"))
    here.ensure_collection("c", "resnet50/avg/fp32")
    elsewhere.drop("c")
    elsewhere.ensure_collection("c", "resnet50/avg/int8")
    here.ensure_collection("c", "resnet50/avg/fp32")  # within ENCODER_CHECK_SECONDS: not asked again
    monkeypatch.setattr("imgsearch.vectors.ENCODER_CHECK_SECONDS", 0.0)
    with pytest.raises(EncoderMismatch):
        here.ensure_collection("c", "resnet50/avg/fp32")


SEALS = """
import sys
from pathlib import Path
import numpy as np
import imgsearch
from imgsearch.vectors import VectorStore
import milvus_lite.constants

folder = Path(sys.argv[1])
store = VectorStore(str(folder / "milvus.db"))
vectors = np.random.default_rng(0).normal(size=(2500, 2048)).astype(np.float32)
store.upsert("c", list(range(2500)), vectors, [["x"]] * 2500, ["/f"] * 2500)
print(milvus_lite.constants.MEMTABLE_MEMORY_LIMIT, len(list(folder.rglob("data_*.parquet"))))
"""


@pytest.mark.parametrize("given,where", [(None, ""), (str(256 * 2**20), "env"), (str(256 * 2**20), ".env")])
def test_milvus_lite_seals_small_segments_unless_told_otherwise(tmp_path: Path, given: str | None,
                                                                where: str) -> None:
    # Sealing Milvus Lite's in-memory table turns each row into Python objects: at its 128 MB default
    # an index run of 20,000 photos peaked at 2.47 GB. imgsearch seals at 16 MB (2,000 vectors)
    # unless MILVUS_LITE_MEMTABLE_MEMORY_LIMIT_BYTES is set; checked in a fresh process, as Lite
    # reads it once, when it is imported.
    import os
    import subprocess
    import sys

    from imgsearch.runtime import LITE_MEMTABLE_BYTES

    env = {k: v for k, v in os.environ.items() if k != "MILVUS_LITE_MEMTABLE_MEMORY_LIMIT_BYTES"}
    if where == "env":
        env["MILVUS_LITE_MEMTABLE_MEMORY_LIMIT_BYTES"] = given or ""
    if where == ".env":
        (tmp_path / ".env").write_text(f"MILVUS_LITE_MEMTABLE_MEMORY_LIMIT_BYTES={given}\n")
    done = subprocess.run([sys.executable, "-c", SEALS, str(tmp_path)], env=env, capture_output=True, text=True,
                          timeout=300, check=True, cwd=tmp_path)
    limit, sealed = map(int, done.stdout.split())
    assert limit == (int(given) if given else LITE_MEMTABLE_BYTES)
    assert (sealed > 0) == (given is None)  # 2,500 vectors are 20 MB


def test_a_loaded_collection_is_searched_without_asking_and_a_drop_elsewhere_is_empty(
        any_milvus: str, monkeypatch: pytest.MonkeyPatch) -> None:
    here, elsewhere = VectorStore(any_milvus), VectorStore(any_milvus)
    name = f"asked_{image_id(any_milvus) % 10**6}"
    elsewhere.drop(name)
    here.upsert(name, [1, 2], unit(2), [[], []], ["/x", "/x"])
    asked: list[str] = []
    real = here.client.has_collection

    def has_collection(collection: str, **options: object) -> bool:
        asked.append(collection)
        return real(collection, **options)

    monkeypatch.setattr(here.client, "has_collection", has_collection)
    assert [hit.id for hit in here.search(name, unit(2)[:1], 2)[0]] == [1, 2]
    assert asked == [], "a loaded collection costs no has_collection round trip per search"
    elsewhere.drop(name)
    assert here.search(name, unit(1), 2) == [[]]
    assert asked == [name], "a failed search asks once, then answers empty"
    elsewhere.upsert(name, [3], unit(1, seed=5), [[]], ["/x"])  # made again elsewhere: found again
    assert [hit.id for hit in here.search(name, unit(1, seed=5), 2)[0]] == [3]
    elsewhere.drop(name)


def test_searches_and_reads_see_this_process_writes_at_once(any_milvus: str) -> None:
    """Searches and reads by id ask a server for Session consistency (not Strong, which costs ~200 ms
    a search): a vector upserted here is found by the very next search and get, every time. With
    Eventually, the cheaper level, a Milvus 2.3 standalone missed each of these."""
    store = VectorStore(any_milvus)
    name = f"ryw_{image_id(any_milvus) % 10**6}"
    store.drop(name)
    store.upsert(name, list(range(100)), unit(100, seed=5), [["x"]] * 100, ["/f"] * 100)
    fresh = unit(12, seed=6)
    for n, vector in enumerate(fresh):
        image = 1000 + n
        store.upsert(name, [image], vector[np.newaxis], [["x"]], ["/f"])
        assert store.search(name, vector[np.newaxis], 1)[0][0].id == image, f"write {n} not yet searchable"
        assert set(store.vectors(name, [image])) == {image}, f"write {n} not yet readable"
    for n, vector in enumerate(fresh[:4]):  # Milvus 2.3 answers a delete without its timestamp
        store.delete(name, [1000 + n])
        assert 1000 + n not in {hit.id for hit in store.search(name, vector[np.newaxis], 5)[0]}, f"delete {n} seen"
        store.delete(name, [1004 + n])
        assert store.vectors(name, [1004 + n]) == {}, f"delete {n} not yet seen by a read"
    store.drop(name)


@pytest.mark.parametrize("server", ["milvus-standalone"])
def test_a_server_collection_that_grows_gets_the_smaller_index_by_its_seal(
        server: str, milvus_standalone: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 24: past GROW_TO_SQ8_AT a default (HNSW) server collection is rebuilt as IVF_SQ8 by the seal
    that ends an index run, records it, and still answers; one given MILVUS_INDEX, or smaller, keeps its own."""
    monkeypatch.setattr("imgsearch.vector_index.GROW_TO_SQ8_AT", 2000)
    store, chosen = VectorStore(milvus_standalone), VectorStore(milvus_standalone, index_type="HNSW")
    watcher = VectorStore(milvus_standalone)  # another process' view, e.g. the search app
    names = {"grows": store, "small": store, "chosen": chosen}
    for name, owner in names.items():
        owner.drop(name)
        rows = 1500 if name == "small" else 2500
        for start in range(0, rows, 500):
            owner.upsert(name, list(range(start, start + 500)), unit(500, seed=start), [["x"]] * 500, ["/f"] * 500)
    assert watcher._index_of("grows") == "HNSW"
    assert store.seal("small") is None and chosen.seal("chosen") is None
    rebuilt = store.seal("grows")
    assert rebuilt is not None and rebuilt.startswith("IVF_SQ8") and "was HNSW" in rebuilt
    assert store.recorded_index("grows") == rebuilt and store.recorded_index("small") is None
    described = {name: store.client.describe_index(name, "vector")["index_type"] for name in names}
    assert described == {"grows": "IVF_SQ8", "small": "HNSW", "chosen": "HNSW"}
    assert store.seal("grows") is None, "rebuilt once"
    monkeypatch.setattr("imgsearch.vectors.ENCODER_CHECK_SECONDS", 0.0)
    assert watcher._index_of("grows") == "IVF_SQ8", "another process sees the rebuild"
    for start in (0, 1000, 2000):
        vectors = unit(500, seed=start)[:3]
        assert [hits[0].id for hits in watcher.search("grows", vectors, 5)] == [start, start + 1, start + 2]
    for name, owner in names.items():
        owner.drop(name)


def test_a_collection_left_without_its_index_gets_one_when_opened(any_milvus: str,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A rebuild to the grown index (`seal`) drops the old index, then creates the new one: stopped in
    between, the collection has none and cannot be loaded. The next store that opens it creates the
    index a seal would give it at its size (on a server past the threshold: the grown one)."""
    monkeypatch.setattr(vector_index, "GROW_TO_SQ8_AT", 20)
    store = VectorStore(any_milvus)
    name = f"unindexed_{image_id(any_milvus) % 10**6}"
    store.drop(name)
    vectors = unit(30, seed=9)
    store.upsert(name, list(range(30)), vectors, [["x"]] * 30, ["/f"] * 30)
    store.seal(name)
    store.client.release_collection(name)
    store.client.drop_index(name, "vector")  # where a stopped rebuild leaves it
    assert store.client.list_indexes(name, "vector") == []
    store.close()
    reopened = VectorStore(any_milvus)
    assert reopened.search(name, vectors[7:8], 1)[0][0].id == 7
    assert reopened.client.list_indexes(name, "vector") != [] and reopened.count(name) == 30
    if reopened.is_lite:
        assert reopened._index_of(name) == "FLAT" and reopened.recorded_index(name) is None
    else:
        assert reopened._index_of(name) == "IVF_SQ8" and "restored at 30 vectors" in (reopened.recorded_index(name) or "")
    reopened.drop(name)
