"""What one index run did, summed from its chunk reports: the one type the CLI, the
web app's run list, the Prefect artifact and the benchmark read."""

from __future__ import annotations

from dataclasses import dataclass, field

from imgsearch.indexing import ChunkReport, Plan

FAILURES_SHOWN = 1000  # in the artifact; the JSON summary keeps them all


@dataclass
class IndexSummary:
    path: str
    collection: str
    found: int
    chunks: int
    embedded: int = 0  # by the model
    reused: int = 0  # byte-identical to an indexed image: its vector copied
    skipped: int = 0  # unchanged since the last run (by size and mtime, or by sha256)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    broken_chunks: list[str] = field(default_factory=list)  # chunks that failed after their retries
    builds_by_process: dict[int, int] = field(default_factory=dict)  # pid -> models it built
    seconds: float = 0.0

    @classmethod
    def start(cls, path: str, collection: str, plan: Plan, problems: list[tuple[str, str]]) -> IndexSummary:
        """Before any chunk: what discovery refused and what the plan found unchanged."""
        return cls(path, collection, found=plan.total, chunks=len(plan.chunks), skipped=plan.unchanged,
                   failures=list(problems))

    def add(self, report: ChunkReport) -> None:
        self.embedded += report.indexed
        self.reused += report.reused
        self.skipped += report.unchanged
        self.failures.extend(report.failed)
        self.builds_by_process[report.pid] = max(self.builds_by_process.get(report.pid, 0), report.model_builds)

    def add_broken(self, images: int, error: BaseException) -> None:
        self.broken_chunks.append(f"{images} images: {error}")

    @property
    def indexed(self) -> int:
        return self.embedded + self.reused

    @property
    def failed(self) -> int:
        return len(self.failures)

    @property
    def images_per_second(self) -> float:
        return round(self.indexed / self.seconds, 2) if self.seconds > 0 else 0.0

    def figures(self) -> dict[str, object]:
        """The run's numbers, without the list of failures (the artifact's table, the web run list)."""
        return {
            "path": self.path, "collection": self.collection, "found": self.found, "indexed": self.indexed,
            "embedded": self.embedded, "reused": self.reused, "skipped": self.skipped, "failed": self.failed,
            "failed_chunks": len(self.broken_chunks), "chunks": self.chunks,
            "processes": len(self.builds_by_process), "model_builds": sum(self.builds_by_process.values()),
            "seconds": round(self.seconds, 2), "images_per_second": self.images_per_second,
        }

    def as_json(self) -> dict[str, object]:
        """`imgsearch index --json`: the figures and every failure with its reason."""
        return {**self.figures(), "failures": [{"path": path, "reason": reason} for path, reason in self.failures]}
