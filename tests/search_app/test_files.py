"""Thumbnails made on demand: concurrent first requests for one thumbnail all succeed."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image

from imgsearch.catalog import INDEXED, ImageRecord
from search_app.files import thumbnail


def test_concurrent_first_requests_for_one_thumbnail(tmp_path: Path) -> None:
    source = tmp_path / "big.jpg"
    Image.radial_gradient("L").resize((3000, 2000)).convert("RGB").save(source, quality=90)
    record = ImageRecord(collection="c", id=7, path=str(source), sha256="ab" * 32, status=INDEXED)
    start = threading.Barrier(8)

    def one(_: int) -> Path:
        start.wait()
        return thumbnail(source, record, 256, tmp_path / "cache")

    with ThreadPoolExecutor(8) as pool:
        made = list(pool.map(one, range(8)))
    assert len(set(made)) == 1
    with Image.open(made[0]) as small:
        assert max(small.size) == 256
    assert [p.name for p in (tmp_path / "cache" / "c").iterdir()] == [made[0].name], "no partial file left"
