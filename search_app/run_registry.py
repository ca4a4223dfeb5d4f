"""What the app knows of index runs: the ones it started, with their progress, and
the shape in which it answers about any run, its own or one only Prefect knows."""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from tasks.progress import ProgressEvent


@dataclass
class RunStatus:
    run_id: str
    path: str | None
    collection: str | None
    state: str = "PENDING"
    processed: int | None = 0
    total: int | None = None
    failed: int | None = 0
    started_at: float | None = field(default_factory=time.time)
    finished_at: float | None = None
    summary: dict[str, Any] | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def of_flow_run(cls, flow_run: Any) -> RunStatus:
        """A run this process did not start (a deployment, the CLI), as Prefect records it:
        its state, without the progress only the process running it sees."""
        parameters = flow_run.parameters or {}
        return cls(
            str(flow_run.id), parameters.get("path"), parameters.get("collection"),
            state=flow_run.state_type.value if flow_run.state_type else "UNKNOWN",
            processed=None, failed=None, started_at=None,
        )


class RunRegistry:
    """The runs of this process by id; safe across the request and run threads."""

    def __init__(self) -> None:
        self._runs: dict[str, RunStatus] = {}
        self._lock = threading.Lock()

    def add(self, status: RunStatus) -> None:
        with self._lock:
            self._runs[status.run_id] = status

    def get(self, run_id: str) -> RunStatus | None:
        with self._lock:
            return self._runs.get(run_id)

    def latest(self) -> RunStatus | None:
        with self._lock:
            return max(self._runs.values(), key=lambda run: run.started_at or 0.0, default=None)

    def unfinished(self) -> list[str]:
        with self._lock:
            return [run_id for run_id, status in self._runs.items() if status.finished_at is None]

    def record_progress(self, event: ProgressEvent) -> None:
        """The subscriber a run reports its progress to."""
        status = self.get(event.run_id)
        if status is not None:
            status.processed, status.total, status.failed = event.processed, event.total, event.failed
