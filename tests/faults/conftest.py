"""Fault fixtures: servers a test may stop, a Prefect API subprocesses can share,
and the invariant every fault test ends with."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from imgsearch.catalog import INDEXED, Catalog
from imgsearch.discover import canonical_path
from imgsearch.settings import get_settings
from imgsearch.vectors import VectorStore, image_id
from tests.backends import MilvusLiteServer, PrivateMariaDB

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def milvus_server(tmp_path: Path) -> Iterator[MilvusLiteServer]:
    with MilvusLiteServer(tmp_path) as server:
        yield server


@pytest.fixture
def mariadb(tmp_path: Path) -> Iterator[PrivateMariaDB]:
    with PrivateMariaDB(tmp_path) as server:
        yield server


def index_command(folder: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "cli.main", "index", str(folder), "--json", *extra]


def subprocess_env(**settings: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if key not in ("MILVUS_URI", "DATABASE_URL", "MILVUS_HOST", "MYSQL_HOST", "IMGSEARCH_FAILPOINT")}
    env.update(settings)
    env["PYTHONPATH"] = str(ROOT)
    return env


def run_index(folder: Path, env: dict[str, str], *extra: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(index_command(folder, *extra), env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, check=False)


def assert_consistent(database_url: str, milvus_uri: str, collection: str, files: list[Path]) -> None:
    """Milvus ids = the catalog's indexed ids = the files on disk; nothing pending,
    no duplicate id, and each stored vector finds its own image first."""
    catalog, vectors = Catalog(database_url), VectorStore(milvus_uri)
    try:
        milvus_ids = list(vectors.iter_ids(collection))
        assert len(milvus_ids) == len(set(milvus_ids)), "an id is stored twice in Milvus"
        assert vectors.count(collection) == len(milvus_ids)
        known = catalog.known(collection)
        statuses = sorted({record.status for record in known.values()})
        assert statuses == [INDEXED], f"rows left in {statuses}"
        indexed = {record.id for record in known.values()}
        expected = {image_id(canonical_path(path)) for path in files}
        assert indexed == expected, f"catalog: {len(indexed)} indexed, {len(expected)} files"
        assert set(milvus_ids) == indexed, (
            f"{len(set(milvus_ids) - indexed)} vectors without a record, "
            f"{len(indexed - set(milvus_ids))} records without a vector"
        )
        sample = sorted(indexed)[:: max(1, len(indexed) // 4)]
        stored = vectors.vectors(collection, sample)
        for hits, id_ in zip(vectors.search(collection, [stored[i] for i in sample], 1), sample):
            assert hits[0].id == id_ and hits[0].score > 0.999
    finally:
        vectors.close()
        catalog.close()


@pytest.fixture
def fresh_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
