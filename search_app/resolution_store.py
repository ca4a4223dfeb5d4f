"""Undoable duplicate resolutions, kept in this process' memory under a token: the last `KEPT`,
the oldest forgotten first. With several server workers an undo reaches the worker that
resolved only by chance, and is a 404 elsewhere."""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict

from imgsearch.resolve import Resolution

KEPT = 100


class Resolutions:
    def __init__(self) -> None:
        self._kept: OrderedDict[str, Resolution] = OrderedDict()
        self._lock = threading.Lock()

    def keep(self, resolution: Resolution) -> str:
        token = secrets.token_urlsafe(12)
        with self._lock:
            self._kept[token] = resolution
            while len(self._kept) > KEPT:
                self._kept.popitem(last=False)
        return token

    def take(self, token: str) -> Resolution | None:
        with self._lock:
            return self._kept.pop(token, None)

    def put_back(self, token: str, resolution: Resolution) -> None:
        with self._lock:
            self._kept[token] = resolution
