"""Progress of an index run: a Prefect progress artifact, plus in-process listeners.

The flow calls `Progress.advance` as chunk tasks finish. The artifact is what
the Prefect UI and `GET /api/index/{run_id}` show; listeners let the CLI draw
a progress bar in the process that runs the flow.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from uuid import UUID

from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.runtime import flow_run


@dataclass(frozen=True)
class ProgressEvent:
    run_id: str  # the Prefect flow run's id
    processed: int  # images looked at so far, skipped ones included
    total: int
    failed: int


Listener = Callable[[ProgressEvent], None]
_listeners: list[Listener] = []
_lock = threading.Lock()


def add_listener(listener: Listener) -> None:
    with _lock:
        _listeners.append(listener)


def remove_listener(listener: Listener) -> None:
    with _lock:
        if listener in _listeners:
            _listeners.remove(listener)


def _notify(event: ProgressEvent) -> None:
    with _lock:
        listeners = list(_listeners)
    for listener in listeners:
        listener(event)


def artifact_key(collection: str) -> str:
    """Artifact keys allow lowercase letters, digits and dashes only."""
    return ("index-progress-" + collection.lower().replace("_", "-"))[:100]


class Progress:
    def __init__(self, collection: str, total: int, done: int = 0) -> None:
        self.total, self.processed, self.failed = total, done, 0
        self.run_id = str(flow_run.id or "")
        self._artifact: UUID = create_progress_artifact(
            progress=self._percent(), key=artifact_key(collection),
            description=self._description(),
        )
        _notify(ProgressEvent(self.run_id, self.processed, self.total, self.failed))

    def advance(self, images: int, failed: int = 0) -> None:
        self.processed += images
        self.failed += failed
        update_progress_artifact(self._artifact, self._percent(), self._description())
        _notify(ProgressEvent(self.run_id, self.processed, self.total, self.failed))

    def _percent(self) -> float:
        return 100.0 if self.total == 0 else round(100.0 * self.processed / self.total, 2)

    def _description(self) -> str:
        return f"{self.processed} of {self.total} images processed, {self.failed} failed"
