"""Every setting of the README's table, set the way the README says (in the
environment, or in `.env` in the working folder), read by the `imgsearch`
command as a separate process. Each Milvus form is checked against a store
that the test filled first, so a count of its vectors proves which Milvus the
command reached; each database form by the table the command created there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
from sqlalchemy import create_engine, inspect

from imgsearch.resources import release_stores
from imgsearch.vectors import VectorStore
from tests.backends import MilvusLiteServer
from tests.test_cli import assert_one_line_error

IMGSEARCH = str(Path(sys.executable).parent / "imgsearch")
OURS = ("MILVUS_", "MYSQL_", "DATABASE_URL", "DEFAULT_TABLE", "TOP_K", "VECTOR_DIMENSION", "DATA_DIR",
        "IMGSEARCH_", "PREFECT_API")
PROBE = "settings_probe"

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def run(tmp_path: Path) -> Run:
    """`imgsearch ARGS` in tmp_path with `settings` in the environment, or in `.env` there."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(OURS)}

    def invoke(*arguments: str, where: str = "env", **settings: str) -> subprocess.CompletedProcess[str]:
        env = dict(base)
        (tmp_path / ".env").unlink(missing_ok=True)
        if where == "env":
            env.update(settings)
        else:
            (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
        return subprocess.run([IMGSEARCH, *arguments], capture_output=True, text=True, env=env, cwd=tmp_path,
                              timeout=300, check=False)

    return invoke


def fill(uri: str, vectors: int) -> None:
    """Put `vectors` vectors into collection PROBE, then let go of the store."""
    store = VectorStore(uri)
    rng = np.random.default_rng(vectors)
    values = rng.standard_normal((vectors, 2048)).astype(np.float32)
    store.upsert(PROBE, list(range(1, vectors + 1)), values / np.linalg.norm(values, axis=1, keepdims=True),
                 [["probe"]] * vectors, ["probe"] * vectors)
    store.close()
    release_stores()


def counted(result: subprocess.CompletedProcess[str]) -> dict[str, object]:
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("where", ["env", ".env"])
@pytest.mark.parametrize("form", ["relative", "absolute"])
def test_milvus_lite_path(run: Run, tmp_path: Path, where: str, form: str) -> None:
    fill(str(tmp_path / "lite" / "probe.db"), 3)
    uri = "lite/probe.db" if form == "relative" else str(tmp_path / "lite" / "probe.db")
    figures = counted(run("count", "--collection", PROBE, "--json", where=where, MILVUS_URI=uri))
    assert figures["vectors"] == 3


@pytest.mark.parametrize("where", ["env", ".env"])
def test_milvus_server_by_uri_and_by_the_seeds_host_and_port(run: Run, tmp_path: Path, where: str) -> None:
    with MilvusLiteServer(tmp_path) as server:
        fill(server.uri, 4)
        assert counted(run("count", "--collection", PROBE, "--json", where=where,
                           MILVUS_URI=server.uri))["vectors"] == 4
        assert counted(run("count", "--collection", PROBE, "--json", where=where,
                           MILVUS_HOST="127.0.0.1", MILVUS_PORT=str(server.port)))["vectors"] == 4


@pytest.mark.parametrize("where", ["env", ".env"])
def test_sqlite_url_and_data_dir(run: Run, tmp_path: Path, where: str) -> None:
    counted(run("count", "--json", where=where, DATABASE_URL="sqlite:///catalogs/mine.db"))
    assert "images" in inspect(create_engine(f"sqlite:///{tmp_path / 'catalogs' / 'mine.db'}")).get_table_names()
    counted(run("count", "--json", where=where, DATA_DIR="elsewhere"))
    assert (tmp_path / "elsewhere" / "catalog.db").is_file() and (tmp_path / "elsewhere" / "milvus.db").exists()


@pytest.mark.mysql
@pytest.mark.parametrize("where", ["env", ".env"])
def test_the_seeds_mysql_settings(run: Run, where: str, mysql_server_url: str) -> None:
    parts = urlsplit(mysql_server_url)
    engine = create_engine(mysql_server_url)
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE IF EXISTS images")
    counted(run("count", "--json", where=where, MYSQL_HOST=parts.hostname or "", MYSQL_PORT=str(parts.port),
                MYSQL_USER=parts.username or "", MYSQL_PWD=parts.password or "", MYSQL_DB=parts.path.lstrip("/")))
    assert "images" in inspect(engine).get_table_names()
    engine.dispose()


@pytest.mark.parametrize("where", ["env", ".env"])
def test_plain_settings_and_wrong_values(run: Run, where: str) -> None:
    assert counted(run("count", "--json", where=where, DEFAULT_TABLE="my_photos"))["collection"] == "my_photos"
    counted(run("count", "--json", where=where, TOP_K="100", VECTOR_DIMENSION="2048", IMGSEARCH_LOG_LEVEL="INFO"))
    assert_one_line_error(run("count", where=where, TOP_K="101"), "TOP_K")
    assert_one_line_error(run("count", where=where, VECTOR_DIMENSION="512"), "VECTOR_DIMENSION")
    assert_one_line_error(run("count", where=where, MILVUS_URI="photos"), "MILVUS_URI")
    assert_one_line_error(run("count", where=where, DATABASE_URL="oracle://x"), "DATABASE_URL")
    assert_one_line_error(run("count", where=where, IMGSEARCH_LOG_LEVEL="loud"), "IMGSEARCH_LOG_LEVEL")
    counted(run("count", "--json", where=where, THUMBNAIL_CACHE_MB="64"))
    counted(run("count", "--json", where=where, POOLING="avg", PRECISION="int8"))
    assert_one_line_error(run("count", where=where, POOLING="median"), "POOLING")
    assert_one_line_error(run("count", where=where, PRECISION="int4"), "PRECISION")
    counted(run("count", "--json", where=where, SCALES="0.707,1,1.414"))
    assert_one_line_error(run("count", where=where, SCALES="0.707;1"), "SCALES")
    assert_one_line_error(run("count", where=where, THUMBNAIL_CACHE_MB="0"), "THUMBNAIL_CACHE_MB")
