"""`imgsearch bench` stage (h): duplicate groups. How long `duplicate_groups` takes on a
collection of `size` images in Milvus Lite and SQLite, and on the sample photos, how
similar copies and two views of one scene are, which chose DEFAULT_MIN_SCORE."""

from __future__ import annotations

import io
import random
import time
from pathlib import Path
from typing import Any

import numpy as np

PLANTED = 0.01  # one image in a hundred gets a near copy
EDITS = ("resize50", "jpeg_q30", "recompress80_q60", "crop90", "flip")
THRESHOLDS = (0.90, 0.92, 0.93, 0.94, 0.95, 0.96)


def at_scale(folder: Path, size: int) -> dict[str, Any]:
    """Time `duplicate_groups` over `size` vectors (clustered like photos of 500 kinds, with
    1% planted near copies) and their indexed records, as the stores hold them after a run."""
    from imgsearch.catalog import INDEXED, Catalog
    from imgsearch.duplicates import DEFAULT_MIN_SCORE, duplicate_groups
    from imgsearch.vectors import VectorStore

    store = VectorStore(str(folder / "milvus-duplicates.db"))
    catalog = Catalog(f"sqlite:///{folder / 'duplicates.db'}")
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(500, 2048)).astype(np.float32)
    matrix = centres[rng.integers(0, 500, size)] + rng.normal(size=(size, 2048)).astype(np.float32)
    copies = int(size * PLANTED)
    originals = size - copies
    # A copy: its original plus a little noise, cosine about 0.99.
    matrix[originals:] = matrix[:copies] + 0.1 * rng.normal(size=(copies, 2048)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    for start in range(0, size, 5000):
        ids = list(range(start, min(size, start + 5000)))
        store.upsert("bench", ids, matrix[ids[0] : ids[-1] + 1], [["x"]] * len(ids), ["/bench"] * len(ids))
        catalog.upsert("bench", [{"id": image, "path": f"/bench/{image:06d}.jpg", "labels": ["x"],
                                  "folder": "/bench", "status": INDEXED, "width": 500, "height": 375,
                                  "size": 100_000} for image in ids])
    del matrix
    started = time.perf_counter()
    groups = duplicate_groups("bench", store, catalog, DEFAULT_MIN_SCORE)
    seconds = time.perf_counter() - started
    store.drop("bench")
    store.close()
    catalog.close()
    planted = {frozenset((k, originals + k)) for k in range(copies)}
    found = sum(1 for group in groups if frozenset(image.id for image in group.images) in planted)
    return {"images": size, "seconds": seconds, "groups": len(groups), "planted": copies,
            "largest": max((len(group.images) for group in groups), default=0), "planted_found": found}


def thresholds(weights: Path, pooling: str, precision: str, count: int = 20) -> dict[str, Any]:
    """On `count` of the 20 sample photos: how similar each edited copy is to its original, and two
    views of one scene that share a fifth of it; the share of each above each threshold."""
    from PIL import Image

    from imgsearch.decode import decode_image
    from imgsearch.resources import encoder as build_encoder
    from imgsearch.samples import augment, sample_photos
    from imgsearch.settings import get_settings

    encoder = build_encoder(weights, pooling, 32, precision)
    rng = random.Random(3)

    def jpeg(image: Image.Image, quality: int = 90) -> bytes:
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=quality)
        return buffer.getvalue()

    def embed(images: list[bytes]) -> np.ndarray:
        vectors: np.ndarray = encoder.embed(np.stack([decode_image(data).pixels for data in images]))
        return vectors

    def edited(image: Image.Image, edit: str) -> bytes:
        w, h = image.size
        return {"resize50": lambda: jpeg(image.resize((w // 2, h // 2))),
                "jpeg_q30": lambda: jpeg(image, 30),
                "recompress80_q60": lambda: jpeg(image.resize((w * 4 // 5, h * 4 // 5)), 60),
                "crop90": lambda: jpeg(image.crop((w // 20, h // 20, w - w // 20, h - h // 20))),
                "flip": lambda: jpeg(image.transpose(Image.Transpose.FLIP_LEFT_RIGHT))}[edit]()

    photos = sample_photos(get_settings().cache_dir)[:count]
    sources = [Image.open(photo.path).convert("RGB") for photo in photos]
    originals = [augment(source, rng) for source in sources]
    reference = embed([jpeg(image) for image in originals])
    copies = {edit: (embed([edited(image, edit) for image in originals]) * reference).sum(axis=1) for edit in EDITS}
    views = []
    for source in sources:  # left and right, top and bottom: 300 of 500 pixels each, 100 shared
        square = source.resize((500, 500))
        pair = embed([jpeg(square.crop(box)) for box in ((0, 60, 300, 440), (200, 60, 500, 440),
                                                         (60, 0, 440, 300), (60, 200, 440, 500))])
        views += [float(pair[0] @ pair[1]), float(pair[2] @ pair[3])]
    scene = np.asarray(views)
    grouped = np.concatenate([copies[edit] for edit in EDITS if edit != "flip"])
    return {
        "pooling": pooling, "precision": precision, "photos": len(photos),
        "copies": {edit: {"min": float(v.min()), "median": float(np.median(v))} for edit, v in copies.items()},
        "views": {"max": float(scene.max()), "median": float(np.median(scene)), "pairs": len(scene)},
        "by_threshold": {f"{t:.2f}": {"copies_grouped": float(np.mean(grouped >= t)),
                                      "views_grouped": float(np.mean(scene >= t))} for t in THRESHOLDS},
    }


def render(figures: dict[str, Any]) -> list[tuple[str, str]]:
    scale, found = figures["at_scale"], figures["thresholds"]
    rows = [(f"(h) duplicates, {scale['images']:,} images",
             f"{scale['seconds']:.1f} s; {scale['groups']} groups, {scale['planted_found']} of {scale['planted']} "
             f"planted copies found as exactly their pairs")]
    for threshold, share in found["by_threshold"].items():
        rows.append((f"(h) min_score {threshold} ({found['pooling']}/{found['precision']})",
                     f"copies grouped {share['copies_grouped']:.3f}, two views of a scene grouped "
                     f"{share['views_grouped']:.3f}"))
    return rows
