"""Duplicate groups on real stores and the real encoder: planted copies among distractors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PIL import Image

from imgsearch.discover import discover
from imgsearch.duplicates import DEFAULT_MIN_SCORE, duplicate_groups
from imgsearch.errors import BadInput, NotFound
from imgsearch.indexing import delete_images, index_chunk
from imgsearch.samples import Photo, recompressed_copy
from tasks import stores
from tests.conftest import write_folder

pytestmark = pytest.mark.usefixtures("weights")


def plant(folder: Path, photos: list[Photo]) -> tuple[list[set[str]], list[Path]]:
    """Three originals with their copies, and distractors: other photos, and two views of
    one scene that share a fifth of it (similar, not copies)."""
    originals = write_folder(folder / "originals", photos[:3], 3, seed=11)
    copies = folder / "copies"
    copies.mkdir()
    a, b, c = originals
    with Image.open(a) as image:
        image.resize((image.width // 2, image.height // 2)).save(copies / "a_half.jpg", quality=90)
    shutil.copy(a, copies / "a_exact.jpg")
    recompressed_copy(b, copies / "b_recompressed.jpg", scale=0.8, quality=60)
    with Image.open(b) as image:
        w, h = image.size
        image.crop((w // 40, h // 40, w - w // 40, h - h // 40)).save(copies / "b_cropped.jpg", quality=90)
    shutil.copy(c, copies / "c_exact.jpg")
    distractors = write_folder(folder / "others", photos[3:], 12, seed=12)
    with Image.open(photos[15].path) as source:
        scene = source.convert("RGB").resize((500, 500))
        scene.crop((0, 60, 300, 440)).save(folder / "others" / "view_left.jpg", quality=90)
        scene.crop((200, 60, 500, 440)).save(folder / "others" / "view_right.jpg", quality=90)
    expected = [{str(a), str(copies / "a_half.jpg"), str(copies / "a_exact.jpg")},
                {str(b), str(copies / "b_recompressed.jpg"), str(copies / "b_cropped.jpg")},
                {str(c), str(copies / "c_exact.jpg")}]
    return expected, distractors


def test_planted_copies_are_found_as_exactly_their_groups(env: Path, tmp_path: Path, photos: list[Photo]) -> None:
    expected, _ = plant(tmp_path / "library", photos)
    catalog, vectors = stores.catalog(), stores.vector_store()
    index_chunk(discover(tmp_path / "library").images, "lib", catalog, vectors,
                stores.encoder())

    groups = duplicate_groups("lib", vectors, catalog)
    assert sorted(sorted({image.path for image in g.images}) for g in groups) == sorted(sorted(e) for e in expected)
    stages: set[str] = set()
    by_partitions = duplicate_groups("lib", vectors, catalog, exact_up_to=0,  # the method past 20,000 images
                                     progress=lambda stage, done, total: stages.add(stage))
    assert [[i.path for i in g.images] for g in by_partitions] == [[i.path for i in g.images] for g in groups]
    assert stages == {"reading vectors", "learning lists", "partitioning", "comparing"}
    assert [len(g.images) for g in groups] == [3, 3, 2]  # the largest first
    for group in groups:
        first = group.images[0]
        assert first.score == pytest.approx(1.0, abs=1e-5) and DEFAULT_MIN_SCORE <= group.score <= 1.0
        # The one to keep first: the most pixels (the original, not its half-size copy).
        assert all((first.width or 0) * (first.height or 0) >= (i.width or 0) * (i.height or 0) for i in group.images)
    a_group = next(g for g in groups if any(i.path.endswith("a_half.jpg") for i in g.images))
    assert not a_group.images[0].path.endswith("a_half.jpg")

    # A threshold of 1 keeps only exact copies; a deleted copy leaves its group.
    exact = duplicate_groups("lib", vectors, catalog, min_score=0.99999)
    assert sorted(len(g.images) for g in exact) == [2, 2]
    c_copy = next(i for g in groups for i in g.images if i.path.endswith("c_exact.jpg"))
    delete_images("lib", [c_copy.id], catalog, vectors)
    assert [len(g.images) for g in duplicate_groups("lib", vectors, catalog)] == [3, 3]


def test_bad_requests_are_clear(env: Path, tmp_path: Path) -> None:
    catalog, vectors = stores.catalog(), stores.vector_store()
    with pytest.raises(NotFound, match="no collection named 'nothing'"):
        duplicate_groups("nothing", vectors, catalog)
    for low in (0.2, -1.0, 1.5):
        with pytest.raises(BadInput, match="min_score for duplicates must be from 0.5 to 1"):
            duplicate_groups("nothing", vectors, catalog, min_score=low)
