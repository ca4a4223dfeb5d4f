"""Prefect's temporary API: the subprocess Prefect starts in a process that has
no `PREFECT_API_URL`, and the one way this project stops it.

Prefect stops it with `atexit`, registered only once its `Popen` returned: a
Ctrl-C that lands in between, or a SIGTERM that uvicorn re-raises after its
graceful shutdown (the process then dies by the signal, skipping `atexit`),
left it running (both seen, and tested).
"""

from __future__ import annotations

import sys
import threading
from typing import Any

SERVER_MODULE = "prefect.server.api.server"
LOG_HANDLERS_MODULE = "prefect.logging.handlers"
LOG_DRAIN_SECONDS = 5.0


def ensure_concurrency_limit(name: str, slots: int) -> bool:
    """Create Prefect's global concurrency limit `name` with `slots` if it does not exist;
    True if this call created it. An existing one is never changed."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
            return False
        except ObjectNotFound:
            pass
        try:
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=slots))
        except ObjectAlreadyExists:  # another run created it in between
            return False
    return True


def temporary_apis() -> dict[Any, Any]:
    """Prefect's temporary API servers of this process, by key; none if Prefect never started one."""
    if SERVER_MODULE not in sys.modules:  # not imported: none started (and the import is heavy)
        return {}
    return dict(sys.modules[SERVER_MODULE].SubprocessASGIServer._instances)


def stop_temporary_apis(keep: set[Any] | frozenset[Any] = frozenset()) -> None:
    """Stop every temporary API of this process but those in `keep`, once the run
    logs still queued for it are delivered: left queued, Prefect's log worker
    retries them against the stopped API at interpreter exit (76 s, measured,
    after a Ctrl-C of `imgsearch index`)."""
    stopping = {key: server for key, server in temporary_apis().items() if key not in keep}
    if not stopping:
        return
    deliver_run_logs()
    for server in stopping.values():
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
