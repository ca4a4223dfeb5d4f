from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgsearch.catalog import FAILED, INDEXED, PENDING, Catalog
from imgsearch.discover import discover
from imgsearch.encoder import Encoder
from imgsearch.resources import encoder as get_encoder
from imgsearch.indexing import delete_images, index_chunk, plan_index
from imgsearch.samples import Photo
from imgsearch.searching import encode_query, nearest_each
from imgsearch.vectors import VectorStore, VectorStoreError, image_id
from tests.conftest import write_folder
from tests.test_catalog import row


@pytest.fixture(scope="session")
def encoder(weights: Path) -> Encoder:
    return get_encoder(weights)


@pytest.fixture
def stores(tmp_path: Path, database_url: str) -> tuple[Catalog, VectorStore]:
    return Catalog(database_url), VectorStore(str(tmp_path / "milvus.db"))


def write_bad_files(folder: Path, photo: Photo) -> dict[str, str]:
    """Every kind of file a real photo folder holds; returns name -> expected outcome."""
    folder.mkdir(parents=True, exist_ok=True)
    good = Image.open(photo.path).convert("RGB")
    buffer = io.BytesIO()
    good.save(buffer, "JPEG", quality=90)
    jpeg = buffer.getvalue()
    (folder / "corrupt.jpg").write_bytes(bytes(range(256)) * 40)
    (folder / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 3])
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "text.png").write_text("I am not a picture")
    good.convert("RGBA").save(folder / "rgba.png")
    good.convert("CMYK").save(folder / "cmyk.jpg", quality=90)
    exif = Image.Exif()
    exif[0x0112] = 6
    good.rotate(90, expand=True).save(folder / "rotated.jpg", exif=exif.tobytes(), quality=90)
    return {"corrupt.jpg": FAILED, "truncated.jpg": FAILED, "empty.jpg": FAILED, "text.png": FAILED,
            "rgba.png": INDEXED, "cmyk.jpg": INDEXED, "rotated.jpg": INDEXED}


def test_bad_files_are_recorded_and_skipped_never_fatal(
    tmp_path: Path, stores: tuple[Catalog, VectorStore], encoder: Encoder, photos: list[Photo]
) -> None:
    catalog, vectors = stores
    expected = write_bad_files(tmp_path / "mixed", photos[0])
    found = discover(tmp_path / "mixed")
    report = index_chunk(found.images, "c", catalog, vectors, encoder)
    assert report.indexed == 3 and len(report.failed) == 4
    records = catalog.known("c")
    assert {Path(path).name: known.status for path, known in records.items()} == expected
    reasons = dict(catalog.failures("c"))
    assert "empty file" in reasons[str(tmp_path / "mixed" / "empty.jpg")]
    assert "truncated" in reasons[str(tmp_path / "mixed" / "truncated.jpg")]
    assert vectors.count("c") == 3
    # The rotated and the CMYK copy look like the original photo: EXIF and colour handled.
    query = encode_query(encoder, photos[0].path.read_bytes())
    scores = {Path(r.path).name: r.score for r in nearest_each(query[None], "c", 3, vectors, catalog)[0]}
    assert min(scores.values()) > 0.85, scores
    record = catalog.by_path("c", str(tmp_path / "mixed" / "rotated.jpg"))
    assert record is not None and (record.width, record.height) == (512, 512)


def test_byte_identical_file_reuses_the_vector(
    tmp_path: Path, stores: tuple[Catalog, VectorStore], encoder: Encoder, photos: list[Photo],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    catalog, vectors = stores
    original = write_folder(tmp_path / "a", photos, 2)[0]
    index_chunk(discover(tmp_path / "a").images, "c", catalog, vectors, encoder)
    copy = tmp_path / "b" / "copy.jpg"
    copy.parent.mkdir()
    shutil.copy(original, copy)
    calls: list[int] = []
    real_embed = encoder.embed
    monkeypatch.setattr(encoder, "embed", lambda pixels: calls.append(len(pixels)) or real_embed(pixels))
    report = index_chunk(discover(copy).images, "c", catalog, vectors, encoder)
    assert (report.indexed, report.reused, calls) == (0, 1, [])
    stored = vectors.vectors("c", [image_id(str(original)), image_id(str(copy))])
    assert np.array_equal(*stored.values())
    record = catalog.by_path("c", str(copy))
    assert record is not None and record.status == INDEXED
    twin = catalog.by_path("c", str(original))
    assert twin is not None and twin.width  # the twin's size, though it was indexed in another run
    assert (record.width, record.height) == (twin.width, twin.height)


def test_crash_between_the_stores_leaves_nothing_searchable_and_is_repaired(
    tmp_path: Path, stores: tuple[Catalog, VectorStore], encoder: Encoder, photos: list[Photo],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    catalog, vectors = stores
    write_folder(tmp_path / "p", photos, 6)
    found = discover(tmp_path / "p")

    def milvus_down(*args: object, **kwargs: object) -> None:
        raise VectorStoreError("Milvus could not upsert into c: connection refused")

    monkeypatch.setattr(vectors, "upsert", milvus_down)
    with pytest.raises(VectorStoreError):
        index_chunk(found.images, "c", catalog, vectors, encoder)
    assert catalog.count("c", status=PENDING) == 6 and vectors.count("c") == 0
    query = encode_query(encoder, Path(found.images[0].path).read_bytes())
    assert nearest_each(query[None], "c", 5, vectors, catalog)[0] == []
    monkeypatch.undo()

    plan = plan_index(found, catalog, vectors, "c", chunk_size=4)
    assert [len(chunk) for chunk in plan.chunks] == [4, 2], "pending rows are planned again"
    for chunk in plan.chunks:
        index_chunk(chunk, "c", catalog, vectors, encoder)
    assert catalog.count("c") == vectors.count("c") == 6
    assert nearest_each(query[None], "c", 1, vectors, catalog)[0][0].path == found.images[0].path


def test_unchanged_files_are_not_read_and_a_broken_file_stops_being_searchable(
    tmp_path: Path, stores: tuple[Catalog, VectorStore], encoder: Encoder, photos: list[Photo],
) -> None:
    catalog, vectors = stores
    paths = write_folder(tmp_path / "p", photos, 3)
    index_chunk(discover(tmp_path / "p").images, "c", catalog, vectors, encoder)
    assert plan_index(discover(tmp_path / "p"), catalog, vectors, "c", 10).chunks == []
    paths[0].write_bytes(paths[0].read_bytes()[:100])  # now truncated
    plan = plan_index(discover(tmp_path / "p"), catalog, vectors, "c", 10)
    assert [image.path for image in plan.chunks[0]] == [str(paths[0])]
    report = index_chunk(plan.chunks[0], "c", catalog, vectors, encoder)
    assert len(report.failed) == 1 and vectors.count("c") == 2 and catalog.count("c") == 2


def test_a_plan_reads_the_records_of_its_tree_not_the_collection(
    tmp_path: Path, stores: tuple[Catalog, VectorStore], encoder: Encoder, photos: list[Photo],
) -> None:
    """Records elsewhere in the collection are not read (a small folder added to a big collection
    plans in the folder's time and memory); an image a symlink resolves to outside the root is
    still found unchanged."""
    catalog, vectors = stores
    outside = write_folder(tmp_path / "outside", photos, 1)[0]
    write_folder(tmp_path / "p", photos[1:], 2)
    (tmp_path / "p" / "linked.jpg").symlink_to(outside)
    index_chunk(discover(tmp_path / "p").images, "c", catalog, vectors, encoder)
    catalog.upsert("c", [row(f"/elsewhere/{n}.jpg", INDEXED) for n in range(2000)])
    read: list[str] = []
    original = catalog.known

    def counting(*args: object, **kwargs: object) -> object:
        found = original(*args, **kwargs)  # type: ignore[arg-type]
        read.extend(found)
        return found

    catalog.known = counting  # type: ignore[method-assign]
    plan = plan_index(discover(tmp_path / "p"), catalog, vectors, "c", 10)
    assert plan.chunks == [] and plan.unchanged == 3, "the symlinked image outside the root is known too"
    assert len(read) == 3 and not any("/elsewhere/" in path for path in read), read


def test_delete_removes_from_both_stores(
    tmp_path: Path, stores: tuple[Catalog, VectorStore], encoder: Encoder, photos: list[Photo],
) -> None:
    catalog, vectors = stores
    write_folder(tmp_path / "p", photos, 4)
    index_chunk(discover(tmp_path / "p").images, "c", catalog, vectors, encoder)
    victims = catalog.under_path("c", str(tmp_path / "p" / "class_243"))
    assert len(victims) == 1
    delete_images("c", [victims[0].id], catalog, vectors)
    assert catalog.count("c") == vectors.count("c") == 3
