"""`imgsearch migrate`, as a user runs it: Milvus Lite + SQLite to a real Milvus standalone + MariaDB,
killed halfway and run again, then back to a Milvus Lite file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from imgsearch.catalog import FAILED, INDEXED, Catalog
from imgsearch.errors import BadInput
from imgsearch.migrate import migrate_collection
from imgsearch.vectors import EncoderMismatch, VectorStore

IMGSEARCH = str(Path(sys.executable).parent / "imgsearch")
ENCODER = "resnet50/gem/dynamic"
IMAGES, BROKEN = 2500, 40


def unit(rows: int, seed: int) -> np.ndarray:
    values = np.random.default_rng(seed).standard_normal((rows, 2048), dtype=np.float32)
    return values / np.linalg.norm(values, axis=1, keepdims=True)


def fill(milvus: str, catalog_url: str, name: str) -> np.ndarray:
    """IMAGES indexed images (vectors and records) and BROKEN failed ones (records only)."""
    vectors, catalog = VectorStore(milvus), Catalog(catalog_url)
    matrix = unit(IMAGES, seed=4)
    vectors.ensure_collection(name, ENCODER)
    for start in range(0, IMAGES, 1000):
        ids = list(range(start + 1, min(IMAGES, start + 1000) + 1))
        vectors.upsert(name, ids, matrix[start : start + len(ids)], [["cat"] if i % 2 else ["dog"] for i in ids],
                       [f"/p/{i // 100}" for i in ids])
        catalog.upsert(name, [{"id": i, "path": f"/p/{i // 100}/{i}.jpg", "status": INDEXED, "labels": ["x"],
                               "folder": f"/p/{i // 100}", "size": i, "width": 5, "height": 4} for i in ids])
    catalog.upsert(name, [{"id": 10**6 + n, "path": f"/p/broken/{n}.jpg", "status": FAILED, "error": "truncated",
                           "labels": [], "folder": "/p/broken"} for n in range(BROKEN)])
    vectors.seal(name)
    vectors.close()
    catalog.close()
    return matrix


def migrate(env: dict[str, str], *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([IMGSEARCH, "migrate", *arguments], env=env, capture_output=True, text=True, timeout=600,
                          check=False)


@pytest.mark.parametrize("target", ["milvus-standalone"])
def test_a_collection_moves_to_a_server_and_mariadb_resumes_after_a_kill_and_comes_back(
        target: str, tmp_path: Path, milvus_standalone: str, mysql_server_url: str) -> None:
    name = f"moved_{os.getpid()}"
    lite, sqlite = str(tmp_path / "milvus.db"), f"sqlite:///{tmp_path / 'catalog.db'}"
    matrix = fill(lite, sqlite, name)
    env = {**os.environ, "MILVUS_URI": lite, "DATABASE_URL": sqlite, "DATA_DIR": str(tmp_path),
           "DEFAULT_TABLE": name}
    env.pop("IMGSEARCH_FAILPOINT", None)

    killed = migrate({**env, "IMGSEARCH_FAILPOINT": "migrate-batch@2"}, "--to", milvus_standalone,
                     "--catalog-to", mysql_server_url, "--json")
    assert killed.returncode == -9, killed.stderr[-500:]
    done = migrate(env, "--to", milvus_standalone, "--catalog-to", mysql_server_url, "--json")
    assert done.returncode == 0, done.stderr[-500:]
    figures = json.loads(done.stdout)
    assert figures["vectors"] == IMAGES and figures["records"] == IMAGES + BROKEN
    assert figures["vectors_present"] >= 1000 and figures["vectors_copied"] + figures["vectors_present"] == IMAGES, \
        "the second run resumed: what the first had copied was not copied again"
    assert figures["finds_itself"] == 1.0 and figures["top10_agreement"] >= 0.9

    server, mariadb = VectorStore(milvus_standalone), Catalog(mysql_server_url)
    assert server.recorded_encoder(name) == ENCODER, "the encoder record moved with the collection"
    hits = server.search(name, matrix[[7, 1500]], 3, label="dog")
    assert [h[0].id for h in hits] == [8, 1501] or all(h[0].id % 2 == 0 for h in hits), "labels moved"
    assert [hit[0].id for hit in server.search(name, matrix[:5], 1)] == [1, 2, 3, 4, 5]
    assert mariadb.failures(name)[0] == ("/p/broken/0.jpg", "truncated") and mariadb.get(name, [9])[9].size == 9

    back = str(tmp_path / "back.db")
    returned = migrate({**env, "MILVUS_URI": milvus_standalone, "DATABASE_URL": mysql_server_url}, "--to", back)
    assert returned.returncode == 0, returned.stderr[-500:]
    assert "migrated" in returned.stdout and f"MILVUS_URI={back}" in returned.stdout
    assert "root:@" not in returned.stdout, "no catalog URL (it may hold a password) is printed"
    again = VectorStore(back)
    assert again.count(name) == IMAGES and again.recorded_encoder(name) == ENCODER
    assert [hit[0].id for hit in again.search(name, matrix[100:103], 1)] == [101, 102, 103]
    again.drop(name)
    again.close()
    server.drop(name)
    mariadb.drop(name)


def test_clear_refusals(tmp_path: Path) -> None:
    lite, sqlite = str(tmp_path / "milvus.db"), f"sqlite:///{tmp_path / 'catalog.db'}"
    fill(lite, sqlite, "c")
    env = {**os.environ, "MILVUS_URI": lite, "DATABASE_URL": sqlite, "DATA_DIR": str(tmp_path), "DEFAULT_TABLE": "c"}
    env.pop("IMGSEARCH_FAILPOINT", None)
    for arguments, code, says in (([], 1, "nothing to move"), (["--to", lite], 1, "the target Milvus is the source"),
                                  (["--to", str(tmp_path / "x")], 2, "must end in .db"),
                                  (["--collection", "nope", "--to", str(tmp_path / "t.db")], 1, "no collection named")):
        refused = migrate(env, *arguments)
        assert refused.returncode == code and says in refused.stderr, (arguments, refused.stderr[-300:])
        assert "Traceback" not in refused.stderr


def test_a_target_holding_other_vectors_is_refused(tmp_path: Path) -> None:
    lite, sqlite = str(tmp_path / "milvus.db"), f"sqlite:///{tmp_path / 'catalog.db'}"
    fill(lite, sqlite, "c")
    other = VectorStore(str(tmp_path / "other.db"))
    other.ensure_collection("c", "resnet50/avg/fp32")
    with pytest.raises(EncoderMismatch):
        migrate_collection("c", VectorStore(lite), Catalog(sqlite), other)
    with pytest.raises(BadInput, match="nothing to move"):
        migrate_collection("c", VectorStore(lite), Catalog(sqlite))
