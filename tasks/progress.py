"""Progress of an index run: a Prefect progress artifact, and the caller's subscriber.

The flow calls `Progress.advance` as chunk tasks finish. The artifact is what
the Prefect UI shows. Whoever runs the flow in this process (the CLI's progress
bar, the web app's run list) passes its subscriber in with `reporting_to`, around
the call: a context variable, so it reaches only the flow run it wraps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from uuid import UUID

from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.runtime import flow_run

from tasks.naming import artifact_key


@dataclass(frozen=True)
class ProgressEvent:
    run_id: str  # the Prefect flow run's id
    processed: int  # images looked at so far, skipped ones included
    total: int
    failed: int


Subscriber = Callable[[ProgressEvent], None]
_subscriber: ContextVar[Subscriber | None] = ContextVar("imgsearch_progress_subscriber", default=None)


@contextmanager
def reporting_to(subscriber: Subscriber) -> Iterator[None]:
    """Send the progress of the flow runs started inside this block to `subscriber`."""
    token = _subscriber.set(subscriber)
    try:
        yield
    finally:
        _subscriber.reset(token)


class Progress:
    def __init__(self, collection: str, total: int, done: int = 0) -> None:
        self.total, self.processed, self.failed = total, done, 0
        self.run_id = str(flow_run.id or "")
        self._subscriber = _subscriber.get()  # read in the flow's own context, once
        self._artifact: UUID = create_progress_artifact(
            progress=self._percent(), key=artifact_key("index-progress", collection),
            description=self._description(),
        )
        self._notify()

    def advance(self, images: int, failed: int = 0) -> None:
        self.processed += images
        self.failed += failed
        update_progress_artifact(self._artifact, self._percent(), self._description())
        self._notify()

    def _notify(self) -> None:
        if self._subscriber is not None:
            self._subscriber(ProgressEvent(self.run_id, self.processed, self.total, self.failed))

    def _percent(self) -> float:
        return 100.0 if self.total == 0 else round(100.0 * self.processed / self.total, 2)

    def _description(self) -> str:
        return f"{self.processed} of {self.total} images processed, {self.failed} failed"
