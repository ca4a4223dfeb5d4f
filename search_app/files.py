"""Serving original images (and, through `imgsearch.thumbnails`, thumbnails) — only of indexed records.

The client never names a path: it names an id (or, on the seed's `/data`
route, a path that must equal an indexed record's). The record's path was
canonical (symlinks resolved) when it was indexed; if it no longer is — a
symlink planted since, or the file gone — the answer is 404, not the file.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


from imgsearch.catalog import INDEXED, ImageRecord
from search_app.errors import ApiError

MEDIA_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".bmp": "image/bmp",
               ".webp": "image/webp", ".gif": "image/gif"}
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

