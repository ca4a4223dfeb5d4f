"""The thumbnail cache: few sizes, bounded, purged with its images, safe under concurrency."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image

from imgsearch.thumbnails import BUCKETS, ThumbnailCache, bucket


def photo(path: Path, size: tuple[int, int] = (3000, 2000), shade: int = 0) -> Path:
    Image.radial_gradient("L").resize(size).point(lambda v: (v + shade) % 256).convert("RGB").save(
        path, quality=90)
    return path


def test_concurrent_first_requests_for_one_thumbnail(tmp_path: Path) -> None:
    source = photo(tmp_path / "big.jpg")
    cache = ThumbnailCache(tmp_path / "cache", 10**9)
    start = threading.Barrier(8)

    def one(_: int) -> Path:
        start.wait()
        return cache.get(source, "c", 7, "ab" * 32, 256)

    with ThreadPoolExecutor(8) as pool:
        made = list(pool.map(one, range(8)))
    assert len(set(made)) == 1
    with Image.open(made[0]) as small:
        assert max(small.size) == 256
    assert [p.name for p in (tmp_path / "cache" / "c").iterdir()] == [made[0].name], "no partial file left"


@pytest.mark.parametrize(("asked", "served"), [(16, 64), (64, 64), (65, 128), (100, 128), (300, 512), (1024, 1024)])
def test_a_size_is_served_from_the_next_bucket(asked: int, served: int) -> None:
    assert bucket(asked) == served


def test_any_sizes_make_at_most_one_file_per_bucket(tmp_path: Path) -> None:
    source = photo(tmp_path / "p.jpg")
    cache = ThumbnailCache(tmp_path / "cache", 10**9)
    for size in range(16, 1025, 7):
        cache.get(source, "c", 1, "aa" * 32, size)
    assert len(list((tmp_path / "cache" / "c").iterdir())) == len(BUCKETS)


def test_the_cache_stays_under_its_bound_dropping_the_least_recently_used(tmp_path: Path) -> None:
    sources = [photo(tmp_path / f"p{i}.jpg", (800, 600), shade=i * 40) for i in range(6)]
    one = ThumbnailCache(tmp_path / "probe", 10**9).get(sources[0], "c", 0, "00" * 32, 512).stat().st_size
    cache = ThumbnailCache(tmp_path / "cache", int(3.5 * one))
    first = cache.get(sources[0], "c", 0, "00" * 32, 512)
    for number, source in enumerate(sources[1:], start=1):
        os.utime(first)  # the first keeps being asked for
        cache.get(source, "c", number, f"{number:02d}" * 32, 512)
        assert cache.size_bytes() <= cache.max_bytes
    assert first.is_file(), "the recently used thumbnail stays"
    assert len(list((tmp_path / "cache" / "c").iterdir())) < len(sources)


def test_a_changed_file_replaces_its_old_thumbnails(tmp_path: Path) -> None:
    source = photo(tmp_path / "p.jpg")
    cache = ThumbnailCache(tmp_path / "cache", 10**9)
    old = [cache.get(source, "c", 5, "aa" * 32, size) for size in (64, 256)]
    photo(source, shade=99)
    new = cache.get(source, "c", 5, "bb" * 32, 256)
    assert new.is_file() and not any(path.exists() for path in old)


def test_purge_images_and_collections(tmp_path: Path) -> None:
    source = photo(tmp_path / "p.jpg")
    cache = ThumbnailCache(tmp_path / "cache", 10**9)
    kept = cache.get(source, "c", 1, "aa" * 32, 64)
    gone = [cache.get(source, "c", 2, "aa" * 32, size) for size in (64, 1024)]
    other = cache.get(source, "d", 2, "aa" * 32, 64)
    cache.purge_images("c", [2])
    assert kept.is_file() and other.is_file() and not any(path.exists() for path in gone)
    cache.purge_collection("d")
    assert not other.exists() and kept.is_file()


def test_the_bound_and_the_folder_come_from_the_settings(tmp_path: Path) -> None:
    from imgsearch.collection import thumbnails_of
    from imgsearch.settings import load_settings

    cache = thumbnails_of(load_settings(data_dir=tmp_path / "d", thumbnail_cache_mb=1.5))
    assert cache.max_bytes == int(1.5 * 1024 * 1024) and cache.root == tmp_path / "d" / "thumbnails"
    # One per process: every request shares its size count instead of walking the folder again.
    assert thumbnails_of(load_settings(data_dir=tmp_path / "d", thumbnail_cache_mb=1.5)) is cache
