"""Where a benchmark's collection lives: the embedded file (Milvus Lite), the `imgsearch up`
stack's Milvus (`milvus-lite server` over that same kind of file, so that several processes
share it), or a Milvus 2.3 standalone that PyPI's `milvus` package starts here."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BACKENDS = ("lite", "lite-server", "standalone")


@dataclass
class Backend:
    """A Milvus to fill, at `uri`, whose data takes the disk under `disk`."""

    name: str
    data: Path
    uri: str
    disk: Path
    server: Any = None  # has .stop() and .server_proc (a Popen), where a process serves it
    server_name: str = ""  # that process, as the memory figures name it

    @property
    def server_pid(self) -> int | None:
        process = getattr(self.server, "server_proc", None)
        return process.pid if process is not None else None

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


class LiteServer:
    """`milvus-lite server` as `imgsearch up` runs it (cli/stack.py), with its log beside its data."""

    def __init__(self, database: Path) -> None:
        from imgsearch import runtime
        from imgsearch.processes import free_port, listens, wait_until

        self.port = free_port()
        command = [str(Path(sys.executable).with_name("milvus-lite")), "server", "--data-dir", str(database),
                   "--host", "127.0.0.1", "--port", str(self.port)]
        with open(database.with_suffix(".log"), "ab") as log:
            # It imports pymilvus, which refuses a Milvus Lite path in MILVUS_URI (runtime's docstring).
            self.server_proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                                env=runtime.child_environment(dict(os.environ)))
        try:
            wait_until(lambda: listens(self.port), self.server_proc, 60, f"milvus-lite server on port {self.port}")
        except BaseException:
            self.stop()
            raise

    def stop(self, grace: float = 20) -> None:
        if self.server_proc.poll() is None:
            os.killpg(self.server_proc.pid, signal.SIGTERM)
            try:
                self.server_proc.wait(grace)
            except subprocess.TimeoutExpired:
                os.killpg(self.server_proc.pid, signal.SIGKILL)
                self.server_proc.wait()


def start_backend(name: str, data: Path) -> Backend:
    data.mkdir(parents=True, exist_ok=True)
    if name == "lite":
        return Backend(name, data, str(data / "milvus.db"), data / "milvus.db")
    if name == "lite-server":
        server = LiteServer(data / "milvus.db")
        return Backend(name, data, f"http://127.0.0.1:{server.port}", data / "milvus.db", server, "milvus-lite server")
    if name != "standalone":
        raise ValueError(f"unknown backend {name!r}: {', '.join(BACKENDS)}")
    server = start_standalone(data / "standalone")
    return Backend(name, data, f"http://127.0.0.1:{server.listen_port}", data / "standalone", server,
                   "Milvus standalone")


def start_standalone(base: Path) -> Any:
    """A Milvus 2.3.5 standalone (PyPI `milvus`) with its data under `base`, on a free port.

    Its local storage path is given relative to `base` (the server's working folder), not
    absolute as the package writes it. Milvus 2.3's chunk cache, which serves the raw vectors of
    an index that keeps none (IVF_SQ8), writes each binlog it reads to `cache folder / binlog
    path` with O_TRUNC and unlinks it (`ChunkCache::Mmap`); on local storage that binlog path is
    absolute, so `/` yields the binlog itself: the first read back (export, duplicates, migrate,
    more like this) deleted the segment's vectors from disk, and after a restart they could not
    be read again. Relative, the cache's copy lands under `data/chunk_cache/` instead."""
    try:
        from milvus import MilvusServer
    except ImportError:
        raise RuntimeError("a Milvus standalone needs the `milvus` package: ./setup.sh --test") from None
    from imgsearch.processes import free_port

    server = MilvusServer()
    server.set_base_dir(str(base))
    server.listen_port = free_port()
    resolve_storage = server.config.resolve_storage  # start() resolves again: keep the change after it

    def relative_storage() -> None:
        resolve_storage()
        server.config.set("local_storage_dir", "data")

    server.config.resolve_storage = relative_storage
    server.start()
    return server


def folder_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0
