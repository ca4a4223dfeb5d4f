"""Index runs started over HTTP: a real Prefect flow run, created first so its id
can be answered at once (202), then executed in a background thread.

Progress comes from the flow's own progress events; the run is also visible in
the Prefect UI like any other. At most two runs execute at once; more wait.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from imgsearch.settings import Settings
from search_app.errors import ApiError
from tasks.naming import run_name
from tasks.prefect_api import stop_temporary_apis, temporary_apis

if TYPE_CHECKING:
    from imgsearch.summary import IndexSummary

MAX_PARALLEL_RUNS = 2
STOP_SECONDS = 60  # at most this long for running chunks to finish when the server stops


@dataclass
class RunStatus:
    run_id: str
    path: str
    collection: str
    state: str = "PENDING"
    processed: int = 0
    total: int | None = None
    failed: int = 0
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    summary: dict[str, Any] | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class IndexRuns:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._runs: dict[str, RunStatus] = {}
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(MAX_PARALLEL_RUNS)
        self._threads: list[threading.Thread] = []
        # Prefect API servers that already ran in this process are not this app's to stop.
        self._servers_before = set(temporary_apis())
        # Prefect marks its ephemeral API "running" before it answers, and a second
        # caller during that start is refused: reaching the API is serialised.
        self._api_lock = threading.Lock()
        self._api_ready = False

    def start(self, path: str, collection: str) -> RunStatus:
        """Create the Prefect flow run and start executing it in the background."""
        from flows.index import index_images

        try:
            self._ensure_api()
            return self._start(index_images, path, collection)
        except ApiError:
            raise
        except Exception as error:  # noqa: BLE001 - the Prefect API is a backend: 503, not 500
            raise ApiError(503, f"the Prefect API could not create the run: {error}") from None

    def _start(self, index_images: Any, path: str, collection: str) -> RunStatus:
        from prefect.client.orchestration import get_client

        parameters = {"path": path, "collection": collection}
        name = run_name("index", path, collection)
        with get_client(sync_client=True) as client:
            flow_run = client.create_flow_run(index_images, name=name, parameters=parameters)
        status = RunStatus(str(flow_run.id), path, collection)
        with self._lock:
            self._runs[status.run_id] = status
        thread = threading.Thread(
            target=self._execute, args=(flow_run, parameters, status), daemon=True,
            name=f"index-run-{status.run_id[:8]}",
        )
        with self._lock:
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
                with reporting_to(self._on_progress):
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

    def _on_progress(self, event: Any) -> None:
        with self._lock:
            status = self._runs.get(event.run_id)
        if status is not None:
            status.processed, status.total, status.failed = event.processed, event.total, event.failed

    def get(self, run_id: str) -> RunStatus | None:
        with self._lock:
            return self._runs.get(run_id)

    def latest(self) -> RunStatus | None:
        with self._lock:
            return max(self._runs.values(), key=lambda run: run.started_at, default=None)

    def _ensure_api(self) -> None:
        """Reach the Prefect API once; with no PREFECT_API_URL this starts Prefect's
        temporary API (a few seconds, once per server process)."""
        from prefect.client.orchestration import get_client

        with self._api_lock:
            if self._api_ready:
                return
            with get_client(sync_client=True) as client:
                failure = client.api_healthcheck()
            if failure is not None:
                raise failure
            self._api_ready = True

    def warm_up_in_background(self) -> None:
        """Reach a configured Prefect server now, so the first POST /api/index answers at once.

        Not done for the temporary API: starting it costs ~12 s of CPU, which at
        start-up slowed searches on 2 cores from 72 to 108 ms p50 (measured)."""
        def warm() -> None:
            try:
                self._ensure_api()
            except Exception as error:  # noqa: BLE001 - the first run will report it properly
                import logging

                logging.getLogger("imgsearch.http").warning("Prefect API not reachable yet: %s", error)

        threading.Thread(target=warm, name="prefect-warm-up", daemon=True).start()

    def close(self, seconds: float = STOP_SECONDS) -> None:
        """Stop the runs of this process, then the ephemeral Prefect API it may have started.

        Runs first: chunk tasks not yet started end at once and are not retried
        (their images stay pending for the next run), chunks in the model finish,
        and each run records its end in the API while the API still answers.
        Stopping the API under a running flow made every chunk retry with
        backoff, and shutdown took 74 s (measured). Prefect stops the API with
        `atexit`, but uvicorn re-raises SIGTERM after its graceful shutdown, so
        the process dies by the signal and `atexit` never runs: the API
        subprocess was left behind (seen, and tested).
        """
        with self._lock:
            threads = list(self._threads)
            running = [run_id for run_id, status in self._runs.items() if status.finished_at is None]
        if running:
            from tasks.indexing import stop_runs

            stop_runs(running)
        deadline = time.monotonic() + seconds
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        stop_temporary_apis(keep=self._servers_before)

    def read_from_prefect(self, run_id: str) -> dict[str, Any] | None:
        """A run this process did not start (a deployment, the CLI): its state from Prefect."""
        from uuid import UUID

        from prefect.client.orchestration import get_client
        from prefect.exceptions import ObjectNotFound

        try:
            identifier = UUID(run_id)
        except ValueError:
            return None
        try:
            with get_client(sync_client=True) as client:
                flow_run = client.read_flow_run(identifier)
        except ObjectNotFound:
            return None
        parameters = flow_run.parameters or {}
        return {
            "run_id": run_id, "path": parameters.get("path"), "collection": parameters.get("collection"),
            "state": flow_run.state_type.value if flow_run.state_type else "UNKNOWN",
            "processed": None, "total": None, "failed": None, "summary": None,
            "error": None, "started_at": None, "finished_at": None,
        }
