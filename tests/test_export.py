"""imgsearch export: vectors and records row for row, streamed; a folder that exists is refused."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from imgsearch.discover import discover
from imgsearch.errors import Conflict, NotFound
from imgsearch.export import HEADER_BYTES, export_collection, npy_header
from imgsearch.indexing import index_chunk
from imgsearch.samples import Photo
from tasks import stores
from tests.conftest import write_folder

pytestmark = pytest.mark.usefixtures("weights")


@pytest.mark.parametrize("rows", [0, 7, 10**12])
def test_the_npy_header_is_read_by_numpy(tmp_path: Path, rows: int) -> None:
    header = npy_header(rows, 2048)
    assert len(header) == HEADER_BYTES
    path = tmp_path / "m.npy"
    path.write_bytes(header)
    with open(path, "rb") as handle:
        assert np.lib.format.read_magic(handle) == (1, 0)
        assert np.lib.format.read_array_header_1_0(handle) == ((rows, 2048), False, np.dtype("<f4"))
    if rows < 100:
        path.write_bytes(header + np.arange(rows * 2048, dtype="<f4").tobytes())
        assert np.array_equal(np.load(path), np.arange(rows * 2048, dtype="<f4").reshape(rows, 2048))


def test_export_writes_vectors_and_records_row_for_row(env: Path, tmp_path: Path, photos: list[Photo]) -> None:
    paths = write_folder(tmp_path / "p", photos, 12)
    (tmp_path / "p" / "broken.jpg").write_bytes(b"not an image")
    catalog, vectors = stores.catalog(), stores.vector_store()
    index_chunk(discover(tmp_path / "p").images, "x", catalog, vectors,
                stores.encoder())

    done = export_collection("x", vectors, catalog, tmp_path / "out", batch=5)  # three batches
    assert (done.images, done.dimension) == (12, 2048) and not (tmp_path / "out.part").exists()
    matrix = np.load(tmp_path / "out" / "vectors.npy")
    with open(tmp_path / "out" / "records.csv", newline="") as table:
        rows = list(csv.DictReader(table))
    assert matrix.shape == (12, 2048) and matrix.dtype == np.float32 and len(rows) == 12
    assert sorted(row["path"] for row in rows) == sorted(str(p) for p in paths)  # the broken file is not there
    stored = vectors.vectors("x", [int(row["id"]) for row in rows])
    for row, vector in zip(rows, matrix, strict=True):
        assert np.allclose(stored[int(row["id"])], vector)
        assert json.loads(row["labels"]) == [Path(row["path"]).parent.name] and len(row["sha256"]) == 64
        assert int(row["size"]) == Path(row["path"]).stat().st_size

    with pytest.raises(Conflict, match="exists"):
        export_collection("x", vectors, catalog, tmp_path / "out")
    with pytest.raises(NotFound):
        export_collection("nothing", vectors, catalog, tmp_path / "other")
    assert not (tmp_path / "other").exists() and not (tmp_path / "other.part").exists()
