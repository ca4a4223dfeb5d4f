"""Resolving duplicate groups on real stores (Milvus Lite, SQLite) and the real encoder: what is
taken out, where files go, and an undo that puts back exactly what was there."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from imgsearch.discover import discover
from imgsearch.duplicates import duplicate_groups
from imgsearch.errors import BadInput, NotFound
from imgsearch.indexing import index_chunk
from imgsearch.resolve import resolve, undo
from imgsearch.samples import Photo
from imgsearch.searching import like_these
from tasks import stores
from tests.test_duplicates import plant

pytestmark = pytest.mark.usefixtures("weights")


def snapshot(collection: str) -> tuple[dict[int, str], dict[int, np.ndarray]]:
    both = stores.both()
    records = {r["id"]: r["path"] for batch in both.catalog.iter_records(collection) for r in batch
               if r["status"] == "indexed"}
    return records, both.vectors.vectors(collection, list(records))


def test_resolve_moves_files_out_and_undo_puts_everything_back(env: Path, tmp_path: Path,
                                                              photos: list[Photo]) -> None:
    library = tmp_path / "library"
    plant(library, photos)
    both = stores.both()
    index_chunk(discover(library).images, "lib", both.catalog, both.vectors, stores.encoder())
    before_records, before_vectors = snapshot("lib")
    files_before = sorted(str(p) for p in library.rglob("*.jpg"))
    group = duplicate_groups("lib", both.vectors, both.catalog)[0]
    keep, *others = [image.id for image in group.images]
    moved_into = tmp_path / "set aside"

    planned = resolve(both, "lib", keep, others, move_to=str(moved_into), dry_run=True)
    assert snapshot("lib")[0] == before_records and not moved_into.exists()
    assert [image.moved_to for image in planned.removed] == [str(moved_into / Path(before_records[i]).name)
                                                            for i in others]
    assert not planned.undoable

    done = resolve(both, "lib", keep, others, move_to=str(moved_into))
    records, _ = snapshot("lib")
    assert set(records) == set(before_records) - set(others)
    assert both.vectors.count("lib") == len(before_records) - len(others)
    assert all(not os.path.exists(before_records[i]) for i in others)
    assert sorted(os.listdir(moved_into)) == sorted(Path(before_records[i]).name for i in others)
    assert [image.error for image in done.removed] == [None] * len(others) and done.undoable
    assert others[0] not in {r.id for r in like_these([keep], [], "lib", 20, both.vectors, both.catalog)}

    back_again = Path(before_records[others[0]])
    back_again.write_bytes(b"a new file where a moved one was")  # an undo that would overwrite it is refused
    with pytest.raises(BadInput, match="exists again"):
        undo(both, done)
    assert sorted(os.listdir(moved_into)) == sorted(Path(before_records[i]).name for i in others)  # nothing moved
    back_again.unlink()
    assert undo(both, done) == len(others)
    after_records, after_vectors = snapshot("lib")
    assert after_records == before_records
    assert all(np.array_equal(after_vectors[i], before_vectors[i]) for i in before_records)
    assert sorted(str(p) for p in library.rglob("*.jpg")) == files_before and os.listdir(moved_into) == []
    restored = both.catalog.get("lib", others)
    assert all(r.status == "indexed" and r.indexed_at is not None for r in restored.values())
    assert others[0] in {r.id for r in like_these([keep], [], "lib", 20, both.vectors, both.catalog)}


def test_a_file_that_cannot_be_moved_is_reported_and_deleting_cannot_be_undone(
        env: Path, tmp_path: Path, photos: list[Photo]) -> None:
    library = tmp_path / "library"
    plant(library, photos)
    both = stores.both()
    index_chunk(discover(library).images, "lib", both.catalog, both.vectors, stores.encoder())
    first, second = duplicate_groups("lib", both.vectors, both.catalog)[:2]
    gone = first.images[1]
    os.remove(gone.path)  # deleted behind the index's back
    done = resolve(both, "lib", first.images[0].id, [gone.id], move_to=str(tmp_path / "aside"))
    assert done.removed[0].moved_to is None and "No such file" in (done.removed[0].error or "")
    assert gone.id not in snapshot("lib")[0]  # out of the index all the same

    keep, *others = [image.id for image in second.images]
    deleted = resolve(both, "lib", keep, others, delete_files=True)
    assert all(image.deleted for image in deleted.removed) and not deleted.undoable
    assert all(not os.path.exists(image.path) for image in second.images[1:])
    assert os.path.exists(second.images[0].path)
    with pytest.raises(BadInput, match="cannot be undone"):
        undo(both, deleted)


def test_bad_resolutions_are_refused_and_change_nothing(env: Path, tmp_path: Path, photos: list[Photo]) -> None:
    library = tmp_path / "library"
    plant(library, photos)
    both = stores.both()
    index_chunk(discover(library).images, "lib", both.catalog, both.vectors, stores.encoder())
    before = snapshot("lib")[0]
    a, b = list(before)[:2]
    (tmp_path / "a file").write_text("")
    for arguments, error, message in [
        ((a, [a, b]), BadInput, "both kept and removed"),
        ((a, []), BadInput, "at least one image"),
        ((a, [12345]), NotFound, "no indexed image with id 12345"),
        ((a, [b], {"move_to": "relative/folder"}), BadInput, "absolute folder"),
        ((a, [b], {"move_to": str(tmp_path / "a file")}), BadInput, "not a folder"),
        ((a, [b], {"move_to": str(tmp_path), "delete_files": True}), BadInput, "not both"),
    ]:
        keep, remove, *options = arguments
        with pytest.raises(error, match=message):
            resolve(both, "lib", keep, remove, **(options[0] if options else {}))
    with pytest.raises(NotFound):
        resolve(both, "nothing", a, [b])
    assert snapshot("lib")[0] == before
