"""Index runs started over HTTP: a real Prefect flow run, created first so that its id
can be answered at once (202), then executed in a background thread of this process.

Progress comes from the flow's own progress events; the run is also visible in
the Prefect UI like any other. At most two runs execute at once; more wait.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from search_app.errors import ApiError
from search_app.run_registry import RunRegistry, RunStatus
from tasks.naming import run_name
from tasks.prefect_api import PrefectApi

if TYPE_CHECKING:
    from imgsearch.summary import IndexSummary

MAX_PARALLEL_RUNS = 2
STOP_SECONDS = 60  # at most this long for running chunks to finish when the server stops


class IndexRuns:
    def __init__(self) -> None:
        self.registry = RunRegistry()
        self.api = PrefectApi()
        self._slots = threading.BoundedSemaphore(MAX_PARALLEL_RUNS)
        self._threads: list[threading.Thread] = []
        self._threads_lock = threading.Lock()

    def start(self, path: str, collection: str) -> RunStatus:
        """Create the Prefect flow run and start executing it in the background."""
        from flows.index import index_images

        parameters = {"path": path, "collection": collection}
        try:
            flow_run = self.api.create_flow_run(index_images, run_name("index", path, collection), parameters)
        except Exception as error:  # noqa: BLE001 - the Prefect API is a backend: 503, not 500
            raise ApiError(503, f"the Prefect API could not create the run: {error}") from None
        status = RunStatus(str(flow_run.id), path, collection)
        self.registry.add(status)
        thread = threading.Thread(target=self._execute, args=(flow_run, parameters, status), daemon=True,
                                  name=f"index-run-{status.run_id[:8]}")
        with self._threads_lock:
            self._threads = [known for known in self._threads if known.is_alive()] + [thread]
        thread.start()
        return status

    def _execute(self, flow_run: Any, parameters: dict[str, Any], status: RunStatus) -> None:
        from prefect.flow_engine import run_flow

        from flows.index import index_images
        from tasks.progress import reporting_to

        with self._slots:
            status.state = "RUNNING"
            try:
                with reporting_to(self.registry.record_progress):
                    state = run_flow(index_images, flow_run=flow_run, parameters=parameters,
                                     return_type="state")
                status.state = state.type.value
                if state.is_completed():
                    summary: IndexSummary = state.result()
                    status.summary = summary.figures()
                    status.processed = status.total = summary.found
                    status.failed = summary.failed
                else:
                    status.error = state.message or state.name
            except BaseException as error:  # noqa: BLE001 - a background thread must record, not die
                status.state, status.error = "CRASHED", f"{type(error).__name__}: {error}"
            finally:
                status.finished_at = time.time()

    def find(self, run_id: str) -> RunStatus | None:
        """A run of this process with its progress, else Prefect's record of it."""
        status = self.registry.get(run_id)
        if status is not None:
            return status
        flow_run = self.api.read_flow_run(run_id)
        return None if flow_run is None else RunStatus.of_flow_run(flow_run)

    def close(self, seconds: float = STOP_SECONDS) -> None:
        """Stop the runs of this process, then the temporary Prefect API it may have started.

        Runs first: chunk tasks not yet started end at once and are not retried
        (their images stay pending for the next run), chunks in the model finish,
        and each run records its end in the API while the API still answers.
        Stopping the API under a running flow made every chunk retry with
        backoff, and shutdown took 74 s (measured).
        """
        with self._threads_lock:
            threads = list(self._threads)
        running = self.registry.unfinished()
        if running:
            from tasks.indexing import stop_runs

            stop_runs(running)
        deadline = time.monotonic() + seconds
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        self.api.close()
