"""Thumbnails of indexed images, cached on disk: few sizes, bounded, purged with their images.

A requested size is served from the next bucket up (`BUCKETS`), so one image has at
most five cached files whatever sizes clients ask for. The whole cache stays under
`max_bytes`: past it, the least recently used files go. A thumbnail is keyed by the
record's sha256, so a changed file never serves its old picture; deleting an image,
dropping a collection or re-indexing a changed file removes its cached files.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from pathlib import Path

from PIL import Image, ImageOps

from imgsearch.decode import to_rgb

BUCKETS = (64, 128, 256, 512, 1024)
SMALLEST, LARGEST = 16, BUCKETS[-1]  # sizes a client may ask for


def bucket(size: int) -> int:
    """The cached size that serves a request for `size` pixels (the browser scales down)."""
    return next(edge for edge in BUCKETS if edge >= size) if size <= LARGEST else LARGEST


class ThumbnailCache:
    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root, self.max_bytes = root, max_bytes
        self._lock = threading.Lock()
        self._bytes: int | None = None  # counted on first write, then kept up to date

    def path(self, collection: str, image_id: int, sha256: str | None, size: int) -> Path:
        return self.root / collection / f"{image_id}-{bucket(size)}-{(sha256 or 'none')[:16]}.jpg"

    def get(self, source: Path, collection: str, image_id: int, sha256: str | None, size: int) -> Path:
        """The cached JPEG of `source` for `size`, made now if missing."""
        target = self.path(collection, image_id, sha256, size)
        if target.is_file():
            os.utime(target)  # recently used: evicted last
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        edge = bucket(size)
        with Image.open(source) as image:
            image.draft("RGB", (edge, edge))
            small = to_rgb(ImageOps.exif_transpose(image))
            small.thumbnail((edge, edge), Image.Resampling.LANCZOS)
            # A name of this call's own: concurrent requests for one thumbnail (found
            # by the load test) each write their own file; the last rename wins, all succeed.
            handle, partial = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=".jpg", dir=target.parent)
            with os.fdopen(handle, "wb") as output:
                small.save(output, "JPEG", quality=85)
        os.replace(partial, target)
        self._purge_other_versions(target)
        self._account(target.stat().st_size)
        return target

    def purge_images(self, collection: str, image_ids: list[int]) -> None:
        folder = self.root / collection
        for image_id in image_ids:
            for cached in folder.glob(f"{image_id}-*.jpg"):
                self._remove(cached)

    def purge_collection(self, collection: str) -> None:
        folder = self.root / collection
        if folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
            with self._lock:
                self._bytes = None  # count again on the next write

    def size_bytes(self) -> int:
        return sum(_size(f) for f in self._files())

    def _purge_other_versions(self, current: Path) -> None:
        """Files of the same image made from other content (the file changed since)."""
        image_id, _, sha = current.stem.split("-", 2)
        for cached in current.parent.glob(f"{image_id}-*.jpg"):
            if not cached.stem.endswith(f"-{sha}"):
                self._remove(cached)

    def _account(self, added: int) -> None:
        with self._lock:
            self._bytes = self.size_bytes() if self._bytes is None else self._bytes + added
            if self._bytes <= self.max_bytes:
                return
            # Evict down to 90% of the bound, least recently used first.
            files = sorted(self._files(), key=_mtime)
            total = sum(_size(f) for f in files)
            for cached in files:
                if total <= 0.9 * self.max_bytes:
                    break
                total -= _size(cached)
                cached.unlink(missing_ok=True)
            self._bytes = total

    def _remove(self, cached: Path) -> None:
        try:
            size = cached.stat().st_size
            cached.unlink()
        except OSError:
            return
        with self._lock:
            if self._bytes is not None:
                self._bytes -= size

    def _files(self) -> list[Path]:
        return [f for f in self.root.glob("*/*.jpg") if f.is_file()] if self.root.is_dir() else []


# Another request may remove a file between listing and reading it.
def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
