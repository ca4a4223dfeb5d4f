"""`imgsearch index --task-runner dask`: a real LocalCluster of 2 processes, against a real
`milvus-lite server` (Milvus Lite's file cannot be shared by processes), indexes exactly the
ids that the default runner does, with the model built once per worker."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from imgsearch.catalog import Catalog
from imgsearch.samples import Photo
from imgsearch.vectors import VectorStore, image_id
from tests.backends import MilvusLiteServer
from tests.conftest import write_folder
from tests.test_deployments import clean_env

BIN = Path(sys.executable).parent
pytestmark = pytest.mark.usefixtures("weights")


@pytest.fixture(scope="module")
def milvus_lite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with MilvusLiteServer(tmp_path_factory.mktemp("milvus-lite-server")) as server:
        yield server.uri


def index(path: Path, collection: str, runner: str, env: dict[str, str]) -> dict:
    result = subprocess.run(
        [str(BIN / "imgsearch"), "index", str(path), "--collection", collection, "--chunk-size", "4",
         "--task-runner", runner, "--json"],
        capture_output=True, text=True, env=env, timeout=900, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def test_dask_indexes_exactly_what_threads_index(
    milvus_lite_server: str, tmp_path: Path, photos: list[Photo], prefect_api_url: str
) -> None:
    paths = write_folder(tmp_path / "photos", photos, 20)
    (tmp_path / "photos" / "broken.jpg").write_bytes(b"not a jpeg")
    database = f"sqlite:///{tmp_path / 'catalog.db'}"
    env = clean_env(MILVUS_URI=milvus_lite_server, DATABASE_URL=database, DATA_DIR=str(tmp_path / "data"),
                    PREFECT_HOME=str(tmp_path / "prefect"), PREFECT_API_URL=prefect_api_url)

    threads = index(tmp_path / "photos", "by_threads", "threads", env)
    dask = index(tmp_path / "photos", "by_dask", "dask", env)
    assert threads["indexed"] == dask["indexed"] == 20 and threads["failed"] == dask["failed"] == 1
    assert dask["processes"] == 2 and dask["chunks"] > dask["processes"]
    assert dask["model_builds"] == dask["processes"], "one model per worker, not per task"
    assert threads["processes"] == 1 and threads["model_builds"] == 1

    store = VectorStore(milvus_lite_server)
    assert store.is_lite and store.index_type == "FLAT", "a milvus-lite server gets Lite's index"
    expected = sorted(image_id(str(path)) for path in paths)
    assert sorted(store.iter_ids("by_threads")) == sorted(store.iter_ids("by_dask")) == expected
    catalog = Catalog(database)
    assert catalog.known("by_threads").keys() == catalog.known("by_dask").keys()
    store.close()
    catalog.close()


def test_dask_refuses_a_milvus_lite_file(tmp_path: Path, photos: list[Photo]) -> None:
    write_folder(tmp_path / "p", photos, 1)
    result = subprocess.run([str(BIN / "imgsearch"), "index", str(tmp_path / "p"), "--task-runner", "dask"],
                            capture_output=True, text=True, env=clean_env(DATA_DIR=str(tmp_path / "d")),
                            timeout=300, check=False)
    # A usage mistake, answered as argparse answers one: usage line, one error line, status 2.
    assert result.returncode == 2 and "needs a Milvus server" in result.stderr
    assert result.stderr.startswith("usage: imgsearch") and "Traceback" not in result.stderr
