"""The Prefect API this process talks to: reaching it once, the run records read
from it, the global concurrency limits found in it, and its temporary server.

With no `PREFECT_API_URL`, Prefect starts a temporary API server in a subprocess
(`SubprocessASGIServer()`, one per process) and stops it with `atexit`,
registered only once its `Popen` returned: a Ctrl-C that lands in between, or a
SIGTERM that uvicorn re-raises after its graceful shutdown (the process then
dies by the signal, skipping `atexit`), left it running (both seen, and tested).

The temporary API is also a child in this process' group, and a terminal sends
Ctrl-C to the whole foreground group: it died with the keystroke while the run
still had states, events and logs to send it (`imgsearch index` took 3.5 minutes
to exit, printing connection errors). `detach_temporary_api` starts it in a
session of its own, away from terminal signals; the process that started it
stops it when it ends.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import types
from typing import Any
from uuid import UUID

SERVER_MODULE = "prefect.server.api.server"
LOG_HANDLERS_MODULE = "prefect.logging.handlers"
LOG_DRAIN_SECONDS = 5.0


class _OwnSessionPopen(subprocess.Popen):  # type: ignore[type-arg]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("start_new_session", True)
        super().__init__(*args, **kwargs)


def detach_temporary_api() -> None:
    """Make the temporary API that Prefect starts from now on start in a new session.
    Prefect's server module calls `subprocess.Popen` for that child alone; it gets a
    `subprocess` whose `Popen` asks for a new session, and everything else as it was.
    With an API URL configured no temporary API starts, and Prefect's server module
    (a heavy import) is left alone."""
    from prefect.settings import get_current_settings

    if get_current_settings().api.url is not None:
        return
    from prefect.server.api import server

    if getattr(server.subprocess, "Popen", None) is _OwnSessionPopen:
        return
    patched = types.ModuleType("subprocess")
    patched.__dict__.update(vars(subprocess))
    patched.Popen = _OwnSessionPopen  # type: ignore[attr-defined]
    server.subprocess = patched  # type: ignore[attr-defined]


def temporary_api() -> Any | None:
    """Prefect's temporary API server of this process, if it started one."""
    if SERVER_MODULE not in sys.modules:  # not imported: none started (and the import is heavy)
        return None
    server = sys.modules[SERVER_MODULE].SubprocessASGIServer()  # the one get_client() starts
    return server if server.running else None


def stop_temporary_api() -> None:
    """Stop this process' temporary API, once the run logs still queued for it are
    delivered: left queued, Prefect's log worker retries them against the stopped
    API at interpreter exit (76 s, measured, after a Ctrl-C of `imgsearch index`)."""
    server = temporary_api()
    if server is None:
        return
    deliver_run_logs()
    server.stop()


def deliver_run_logs(seconds: float = LOG_DRAIN_SECONDS) -> None:
    """Send the run logs Prefect has queued, waiting at most `seconds`. In a thread of
    its own: Prefect's drain returns an un-awaited coroutine when called on an event loop."""
    if LOG_HANDLERS_MODULE not in sys.modules:
        return
    worker = sys.modules[LOG_HANDLERS_MODULE].APILogWorker
    drain = threading.Thread(target=worker.drain_all, kwargs={"timeout": seconds, "at_exit": False},
                             name="deliver-run-logs", daemon=True)
    drain.start()
    drain.join(seconds + 1)


def concurrency_limit_active(name: str) -> bool:
    """Whether Prefect's global concurrency limit `name` exists and is active."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            return bool(client.read_global_concurrency_limit_by_name(name).active)
        except ObjectNotFound:
            return False


class PrefectApi:
    """The API as a long-running process (the search app) uses it: reached once, and
    its temporary server stopped at the end only if this process started it here."""

    def __init__(self) -> None:
        # A temporary API already running (a test harness, an earlier user) is not ours to stop.
        self._owns_temporary = temporary_api() is None
        # Prefect marks its temporary API "running" before it answers, and a second
        # caller during that start is refused: reaching the API is serialised.
        self._lock = threading.Lock()
        self._reached = False

    def reach(self) -> None:
        """Reach the API once; with no PREFECT_API_URL this starts Prefect's temporary
        API (a few seconds, once per process)."""
        from prefect.client.orchestration import get_client

        with self._lock:
            if self._reached:
                return
            detach_temporary_api()  # in every server process that may start it (serve --workers N)
            with get_client(sync_client=True) as client:
                failure = client.api_healthcheck()
            if failure is not None:
                raise failure
            self._reached = True

    def reach_in_background(self) -> None:
        """Reach a configured Prefect server now, so that the first run starts at once.

        Not for the temporary API: starting it costs ~12 s of CPU, which at start-up
        slowed searches on 2 cores from 72 to 108 ms p50 (measured)."""
        def reach() -> None:
            try:
                self.reach()
            except Exception as error:  # noqa: BLE001 - the first run will report it properly
                logging.getLogger("imgsearch.http").warning("Prefect API not reachable yet: %s", error)

        threading.Thread(target=reach, name="prefect-reach", daemon=True).start()

    def create_flow_run(self, flow: Any, name: str, parameters: dict[str, Any]) -> Any:
        from prefect.client.orchestration import get_client

        self.reach()
        with get_client(sync_client=True) as client:
            return client.create_flow_run(flow, name=name, parameters=parameters)

    def read_flow_run(self, run_id: str) -> Any | None:
        """A flow run by id, or None if there is no such run (or the id is not one)."""
        from prefect.client.orchestration import get_client
        from prefect.exceptions import ObjectNotFound

        try:
            identifier = UUID(run_id)
        except ValueError:
            return None
        try:
            with get_client(sync_client=True) as client:
                return client.read_flow_run(identifier)
        except ObjectNotFound:
            return None

    def recent_runs(self, flows: list[str], limit: int) -> list[dict[str, Any]]:
        """The newest top-level runs of these flows (a sync's own index subflow is left out), each
        with its state, times, parameters, the figures of its summary table artifact, and its
        page in the Prefect UI (when the API has one: not Prefect's temporary API)."""
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import (
            ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterType, FlowFilter, FlowFilterName, FlowRunFilter,
            FlowRunFilterParentTaskRunId,
        )
        from prefect.client.schemas.sorting import FlowRunSort
        from prefect.settings import get_current_settings

        self.reach()
        ui = get_current_settings().ui_url
        with get_client(sync_client=True) as client:
            names = {flow.id: flow.name for flow in client.read_flows(flow_filter=FlowFilter(
                name=FlowFilterName(any_=flows)))}
            if not names:
                return []
            runs = client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=flows)),
                flow_run_filter=FlowRunFilter(parent_task_run_id=FlowRunFilterParentTaskRunId(is_null_=True)),
                sort=FlowRunSort.EXPECTED_START_TIME_DESC, limit=limit)
            tables = client.read_artifacts(artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[run.id for run in runs]),
                type=ArtifactFilterType(any_=["table"]))) if runs else []
        figures: dict[UUID, dict[str, Any]] = {}
        for table in tables:
            rows = _table_rows(table.data)
            figures.setdefault(table.flow_run_id, {}).update(  # type: ignore[arg-type]
                {str(row.get("metric")): row.get("value") for row in rows if isinstance(row, dict) and "metric" in row})
        return [{
            "id": str(run.id), "name": run.name, "flow": names.get(run.flow_id, ""),
            "state": run.state.type.value if run.state else "UNKNOWN",
            "state_name": run.state.name if run.state else "Unknown",
            "start_time": run.start_time.isoformat() if run.start_time else None,
            "end_time": run.end_time.isoformat() if run.end_time else None,
            "parameters": {key: value for key, value in run.parameters.items() if key in ("path", "collection")},
            "figures": figures.get(run.id, {}),
            "ui_url": f"{ui.rstrip('/')}/runs/flow-run/{run.id}" if ui else None,
        } for run in runs]

    def close(self) -> None:
        if self._owns_temporary:
            stop_temporary_api()


def _table_rows(data: Any) -> list[Any]:
    """A table artifact's rows: Prefect stores them as JSON text."""
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except ValueError:
            return []
    return data if isinstance(data, list) else []
