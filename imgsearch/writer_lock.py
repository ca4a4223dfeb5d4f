"""One writer at a time per Milvus Lite collection, across threads and processes.

Milvus Lite 3.x's engine is single-writer per collection (its own words, in
`milvus_lite/adapter/grpc/server.py`): concurrent reads are safe, concurrent
writes to one collection are not. Writes reach it from the chunk threads of an
index run, from `/img/upload` while a run indexes, and from several processes
sharing one `milvus-lite server` (`imgsearch up`: the search app, the runner,
a CLI run). So each write holds a thread lock of the process and an exclusive
`flock` on a file named by the Milvus address and the collection.

The lock files live in the machine's temporary folder, not in DATA_DIR:
processes sharing a server need not share a working directory or DATA_DIR,
but they do share the machine. Only the write itself is held, never a chunk's
decoding or model time. A real Milvus server takes concurrent writes itself
and is not locked.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import socket
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

LOCK_DIR_NAME = "imgsearch-milvus-locks"


def milvus_address(uri: str) -> str:
    """One spelling per Milvus: a Lite file by its real path, a server by IP and port."""
    if "://" not in uri:
        return os.path.realpath(uri)
    parts = urlsplit(uri)
    host = parts.hostname or "127.0.0.1"
    try:
        host = socket.gethostbyname(host)
    except OSError:
        pass
    return f"{parts.scheme}://{host}:{parts.port or 19530}"


class CollectionWriterLock:
    """`with lock.held(collection):` around each write to a Milvus Lite collection."""

    def __init__(self, uri: str, directory: Path | None = None) -> None:
        self.address = milvus_address(uri)
        self.directory = directory or Path(tempfile.gettempdir()) / LOCK_DIR_NAME
        self._threads: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def path(self, collection: str) -> Path:
        key = hashlib.sha256(f"{self.address}\0{collection}".encode()).hexdigest()[:32]
        return self.directory / f"{key}.lock"

    @contextmanager
    def held(self, collection: str) -> Iterator[None]:
        with self._guard:
            thread_lock = self._threads.setdefault(collection, threading.Lock())
        with thread_lock:
            self.directory.mkdir(parents=True, exist_ok=True)
            # 0o666 so that users sharing a server can share its lock file too.
            descriptor = os.open(self.path(collection), os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX)
                yield
            finally:
                os.close(descriptor)  # closing releases the flock
