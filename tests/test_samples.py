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
