"""sync_folder and reconcile under a real, temporary Prefect API."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from imgsearch.catalog import DELETING, PENDING
from imgsearch.discover import discover
from imgsearch.samples import Photo
from imgsearch.settings import get_settings
from imgsearch.vectors import image_id
from tasks import stores
from tests.conftest import sealed_rows, write_folder
from tests.test_flow_index import backend, ids_of_both_stores  # noqa: F401 - fixture reused

pytestmark = pytest.mark.usefixtures("prefect_api", "weights")


def files_on_disk(folder: Path) -> set[str]:
    return {image.path for image in discover(folder).images}


def test_sync_adds_changes_moves_and_removes(backend: str, tmp_path: Path, photos: list[Photo]) -> None:
    from flows.sync import sync_folder

    if backend == "dask":
        pytest.skip("sync runs index_images as a subflow on its default runner; dask is covered by the index tests")
    collection = get_settings().default_table
    folder = tmp_path / "library"
    paths = write_folder(folder, photos, 16)
    first = sync_folder(path=str(folder))
    assert (first["indexed"], first["removed"]) == (16, 0)

    write_folder(tmp_path / "new", photos[3:], 2, seed=50)
    for number, new in enumerate(sorted((tmp_path / "new").rglob("*.jpg"))):
        shutil.move(new, folder / f"added_{number}.jpg")                       # 2 added
    write_folder(tmp_path / "edit", photos[9:], 1, seed=60)
    os.replace(next((tmp_path / "edit").rglob("*.jpg")), paths[1])          # 1 changed
    (folder / "moved").mkdir()
    shutil.move(paths[2], folder / "moved" / "renamed.jpg")                 # 1 moved
    paths[3].unlink()                                                       # 2 deleted
    paths[4].unlink()

    second = sync_folder(path=str(folder))
    assert (second["embedded"], second["reused"], second["removed"]) == (3, 1, 3)
    catalog_ids, milvus_ids = ids_of_both_stores(collection)
    on_disk = files_on_disk(folder)
    assert len(on_disk) == 16 - 2 + 2
    assert catalog_ids == milvus_ids == sorted(image_id(path) for path in on_disk)
    moved = stores.catalog().by_path(collection, str(folder / "moved" / "renamed.jpg"))
    assert moved is not None and moved.labels == ["moved"]


def test_reconcile_repairs_every_kind_of_divergence(env: Path, tmp_path: Path, photos: list[Photo]) -> None:
    from flows.index import index_images
    from flows.sync import reconcile

    collection = get_settings().default_table
    paths = write_folder(tmp_path / "p", photos, 8)
    index_images(path=str(tmp_path / "p"))
    catalog, vectors = stores.catalog(), stores.vector_store()
    ids = [image_id(str(path)) for path in paths]

    stray = np.ones((1, 2048), dtype=np.float32) / np.sqrt(2048)
    vectors.upsert(collection, [12345], stray, [["x"]], ["/nowhere"])        # vector without a row
    vectors.delete(collection, [ids[0]])                                    # indexed row without vector
    catalog.set_status(collection, [ids[1]], PENDING)                       # a crash left it pending
    paths[2].unlink()                                                       # a row whose file is gone
    catalog.set_status(collection, [ids[2]], PENDING)
    catalog.set_status(collection, [ids[3]], DELETING)                      # an interrupted delete

    fixed = reconcile()
    assert fixed == {"orphan_vectors": 1, "to_reindex": 2, "missing_files": 1, "interrupted_deletes": 1}
    catalog_ids, milvus_ids = ids_of_both_stores(collection)
    assert catalog_ids == milvus_ids == sorted(ids[:2] + ids[4:])
    assert catalog.count(collection, status=None) == 6
    assert sealed_rows(collection) >= 8 + 2, "the two re-embedded are sealed too, not left in the memtable"
    assert reconcile() == {"orphan_vectors": 0, "to_reindex": 0, "missing_files": 0, "interrupted_deletes": 0}


def test_sync_of_changed_paths_touches_only_them(env: Path, tmp_path: Path, photos: list[Photo]) -> None:
    """A watcher's batch (`only`): adds, edits, moves of a file and of a folder, deletes of a file
    and of a folder reach both stores; a move reuses the vector; what changed outside `only` waits."""
    from flows.sync import sync_folder

    collection = get_settings().default_table
    folder = tmp_path / "library"
    write_folder(folder, photos[:3], 12)                                 # 3 folders of 4 photos
    sync_folder(path=str(folder))
    kept_class, moved_class, deleted_class = sorted(folder.iterdir())
    files = sorted(kept_class.glob("*.jpg"))

    added = write_folder(tmp_path / "new", photos[5:], 1, seed=70)[0]
    shutil.move(added, kept_class / "added.jpg")                         # added
    write_folder(tmp_path / "edit", photos[7:], 1, seed=71)
    os.replace(next((tmp_path / "edit").rglob("*.jpg")), files[0])      # edited
    os.rename(files[1], kept_class / "renamed.jpg")                     # a file moved
    files[2].unlink()                                                   # a file deleted
    os.rename(moved_class, folder / "moved_folder")                     # a folder moved
    shutil.rmtree(deleted_class)                                        # a folder deleted
    outside = write_folder(tmp_path / "later", photos[9:], 1, seed=72)[0]
    shutil.move(outside, folder / "not_in_batch.jpg")                   # changed, but not in the batch
    files[3].unlink()                                                   # deleted, not in the batch
    only = [str(kept_class / "added.jpg"), str(files[0]), str(files[1]), str(kept_class / "renamed.jpg"),
            str(files[2]), str(moved_class), str(folder / "moved_folder"), str(deleted_class),
            str(tmp_path / "outside_the_root.jpg")]

    figures = sync_folder(path=str(folder), only=only)
    assert (figures["found"], figures["embedded"], figures["reused"]) == (7, 2, 5), figures
    assert figures["removed"] == 1 + 1 + 4 + 4, figures  # renamed's old path, deleted, moved folder, deleted folder
    catalog_ids, milvus_ids = ids_of_both_stores(collection)
    expected = (files_on_disk(folder) - {str(folder / "not_in_batch.jpg")}) | {str(files[3])}
    assert catalog_ids == milvus_ids == sorted(image_id(path) for path in expected)
    moved = stores.catalog().by_path(collection, str(next((folder / "moved_folder").glob("*.jpg"))))
    assert moved is not None and moved.labels == ["moved_folder"]
