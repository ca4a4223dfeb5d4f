"""Serving original images and thumbnails — only of indexed records.

The client never names a path: it names an id (or, on the seed's `/data`
route, a path that must equal an indexed record's). The record's path was
canonical (symlinks resolved) when it was indexed; if it no longer is — a
symlink planted since, or the file gone — the answer is 404, not the file.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from pathlib import Path

from PIL import Image, ImageOps

from imgsearch.catalog import INDEXED, ImageRecord
from imgsearch.decode import to_rgb
from search_app.errors import ApiError

MEDIA_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".bmp": "image/bmp",
               ".webp": "image/webp", ".gif": "image/gif"}
THUMBNAIL_SIZES = (16, 1024)
SAFE_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=300",
                "Content-Security-Policy": "default-src 'none'"}


def servable_path(record: ImageRecord | None) -> Path:
    """The record's file if it is indexed, still where it was and still a regular file."""
    if record is None or record.status != INDEXED:
        raise ApiError(404, "no indexed image with that id")
    path = record.path
    if os.path.realpath(path) != path:
        raise ApiError(404, "the indexed file has been replaced by a link since it was indexed")
    try:
        info = os.stat(path, follow_symlinks=False)
    except OSError:
        raise ApiError(404, "the indexed file is no longer on disk") from None
    if not stat.S_ISREG(info.st_mode):
        raise ApiError(404, "the indexed path is no longer a regular file")
    return Path(path)


def media_type(path: Path) -> str:
    return MEDIA_TYPES.get(path.suffix.lower(), "application/octet-stream")


def thumbnail(source: Path, record: ImageRecord, size: int, cache_dir: Path) -> Path:
    """A JPEG at most `size` pixels on its longer side, cached on disk by content."""
    key = hashlib.blake2b(f"{record.path}|{record.sha256}|{size}".encode(), digest_size=12).hexdigest()
    target = cache_dir / record.collection / f"{record.id}-{size}-{key}.jpg"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(source) as image:
        image.draft("RGB", (size, size))
        small = to_rgb(ImageOps.exif_transpose(image))
        small.thumbnail((size, size), Image.Resampling.LANCZOS)
        # A name of this call's own: concurrent requests for one thumbnail (found
        # by the load test) each write their own file; the last rename wins, all succeed.
        handle, partial = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=".jpg", dir=target.parent)
        with os.fdopen(handle, "wb") as output:
            small.save(output, "JPEG", quality=85)
    os.replace(partial, target)
    return target
