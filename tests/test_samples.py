"""The sample sets: a kinds-of-object set whose classes share objects, not photos."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

from imgsearch.discover import discover
from imgsearch.samples import KINDS, make_kinds_sample
from imgsearch.settings import get_settings


def test_kinds_sample_labels_each_image_by_the_kind_drawn_on_it(tmp_path: Path, photos: object) -> None:
    count = 2 * len(KINDS)
    make_kinds_sample(tmp_path / "a", count, get_settings().cache_dir, seed=5)
    found = discover(tmp_path / "a")
    assert found.voc and len(found.images) == count and not found.problems
    assert Counter(image.labels for image in found.images) == {(kind,): 2 for kind in KINDS}

    # The same seed writes the same files; another seed other ones.
    make_kinds_sample(tmp_path / "b", count, get_settings().cache_dir, seed=5)
    make_kinds_sample(tmp_path / "c", count, get_settings().cache_dir, seed=6)
    first = min((tmp_path / "a").rglob("*.jpg")).relative_to(tmp_path / "a")
    read = {name: (tmp_path / name / first).read_bytes() for name in "abc"}
    assert read["a"] == read["b"] != read["c"]

    # Two images of one kind share no pixels: each is drawn anew over its own crop.
    same_kind = [image.path for image in found.images if image.labels == (min(KINDS),)]
    one, two = (np.asarray(Image.open(path).convert("RGB").resize((64, 48)), dtype=np.float32) for path in same_kind)
    assert np.abs(one - two).mean() > 10


def test_fashion_sample_is_real_product_photos_a_folder_per_kind(tmp_path: Path) -> None:
    from imgsearch.fashion import CLASSES, fashion_images, make_fashion_sample

    pixels, labels = fashion_images(get_settings().cache_dir)
    assert pixels.shape == (70_000, 28, 28) and pixels.dtype == np.uint8
    assert np.bincount(labels).tolist() == [7_000] * 10
    # As photographed: a light background around a dark article (the data set stores them negated).
    assert np.median(pixels[:, 0, :]) == 255 and pixels[:, 10:18, 10:18].mean() < 128

    make_fashion_sample(tmp_path / "a", 23, get_settings().cache_dir, seed=4)
    found = discover(tmp_path / "a")
    assert len(found.images) == 23 and not found.problems and not found.voc
    assert Counter(image.labels for image in found.images) == {(name,): 3 if number < 3 else 2
                                                               for number, name in enumerate(CLASSES)}
    # Every file is one image of the data set, of its folder's class; the seed decides which.
    for image in found.images:
        index = int(Path(image.path).stem.rsplit("_", 1)[1])
        assert CLASSES[labels[index]] == image.labels[0]
        assert np.array_equal(np.asarray(Image.open(image.path)), pixels[index])
    make_fashion_sample(tmp_path / "b", 23, get_settings().cache_dir, seed=4)
    make_fashion_sample(tmp_path / "c", 23, get_settings().cache_dir, seed=5)
    names = {name: sorted(path.name for path in (tmp_path / name).rglob("*.png")) for name in "abc"}
    assert names["a"] == names["b"] != names["c"]
