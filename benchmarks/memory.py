"""Peak resident memory of the processes a benchmark runs, sampled in a thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


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
        import psutil

        try:
            process = psutil.Process(pid)
            return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)])
        except psutil.Error:
            return 0

    def anonymous(self) -> dict[str, int]:
        """Each process' anonymous memory (RSS less its file-backed and shared pages), now: what
        the kernel cannot drop. Milvus 2.3 keeps vectors read back through a query (`export`,
        `duplicates`) in memory-mapped chunk-cache files, which RSS counts in full."""
        import psutil

        def of(pid: int) -> int:
            try:
                process = psutil.Process(pid)
                return sum(info.rss - info.shared for info in
                           (p.memory_info() for p in [process, *process.children(recursive=True)]))
            except psutil.Error:
                return 0

        return {name: of(pid) for name, pid in list(self.pids.items())}

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


def mb(value: int) -> float:
    return value / 2**20
