"""Peak resident memory of the processes a benchmark runs, sampled in a thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass
class MemoryWatch:
    """Peak RSS of named processes (each with its children), sampled every `every` seconds."""

    every: float = 0.25
    pids: dict[str, int] = field(default_factory=dict)
    peaks: dict[str, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def watch(self, name: str, pid: int) -> None:
        self.pids[name] = pid

    def forget(self, name: str) -> None:
        self.pids.pop(name, None)

    def rss(self, pid: int) -> int:
        return sum(info.rss for info in memory_of_tree(pid))

    def anonymous(self) -> dict[str, int]:
        """Each process' anonymous memory (RSS less its file-backed and shared pages), now: what
        the kernel cannot drop. Milvus 2.3 keeps vectors read back through a query (`export`,
        `duplicates`) in memory-mapped chunk-cache files, which RSS counts in full."""
        return {name: sum(info.rss - info.shared for info in memory_of_tree(pid))
                for name, pid in list(self.pids.items())}

    def sample(self) -> dict[str, int]:
        now = {name: self.rss(pid) for name, pid in list(self.pids.items())}
        for name, value in now.items():
            self.peaks[name] = max(self.peaks.get(name, 0), value)
        return now

    def reset(self) -> None:
        self.peaks = {}

    @contextmanager
    def running(self) -> Iterator[MemoryWatch]:
        thread = threading.Thread(target=self._loop, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            self.sample()


def memory_of_tree(pid: int) -> list[Any]:
    """psutil's memory_info of `pid` and each of its children; none once it has ended."""
    import psutil

    try:
        process = psutil.Process(pid)
        return [p.memory_info() for p in [process, *process.children(recursive=True)]]
    except psutil.Error:
        return []


def mb(value: int) -> float:
    return value / 2**20
