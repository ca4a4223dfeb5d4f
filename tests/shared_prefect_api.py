"""One temporary Prefect API for every test process of a session (pytest-xdist workers).

Each test process used to start its own (`prefect_test_harness`): about 8 CPU-s to start and
migrate, then about 1 CPU-s a minute while it waits, in every process. Now the first process
that needs one starts it with the harness and owns it; the others report to it; the owner stops it
once every process that used it has finished (it waits at its own session's end, when it has
no tests left to run). The session is xdist's: its workers share `basetemp.parent`, which no
other pytest run shares. Without xdist (`-n 0`) a run has the harness to itself, as before.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

WAIT_FOR_USERS_SECONDS = 3600.0  # the owner's last wait: a worker that hangs still lets the run end


@contextmanager
def locked_record(folder: Path, name: str) -> Iterator[Path]:
    """`folder/NAME.json`, a record shared by the session's test processes, read and written by one
    process at a time (`folder/NAME.lock`)."""
    with open(folder / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield folder / f"{name}.json"
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _read(record: Path) -> dict[str, object]:
    return json.loads(record.read_text()) if record.exists() else {}


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@contextmanager
def shared_prefect_api(folder: Path | None, startup_timeout: int = 120) -> Iterator[None]:
    """The session's Prefect API as PREFECT_API_URL in this process; `folder` is the one every test
    process of the session shares (None: this process's own harness)."""
    from prefect.testing.utilities import prefect_test_harness

    if folder is None:
        with prefect_test_harness(server_startup_timeout=startup_timeout):
            yield
        return
    me = os.getpid()
    with locked_record(folder, "prefect-api") as record:
        state = _read(record)
        owner = not state or not _alive(int(state["owner"]))  # type: ignore[call-overload]
        if owner:
            # Started under the lock: the others wait for its URL rather than start one of their own.
            harness = prefect_test_harness(server_startup_timeout=startup_timeout)
            harness.__enter__()
            from prefect.settings import PREFECT_API_URL

            state = {"url": str(PREFECT_API_URL.value()), "owner": me, "users": []}
        state["users"] = [*state["users"], me]  # type: ignore[misc]
        record.write_text(json.dumps(state))
    try:
        if owner:
            yield
        else:
            with _reporting_to(str(state["url"])):
                yield
    finally:
        with locked_record(folder, "prefect-api") as record:
            state = _read(record)
            state["users"] = [pid for pid in state.get("users", []) if pid != me]  # type: ignore[attr-defined]
            record.write_text(json.dumps(state))
        if owner:
            _wait_for_the_others(folder, me)
            harness.__exit__(None, None, None)


@contextmanager
def _reporting_to(url: str) -> Iterator[None]:
    """What the harness sets in the process that started the API, for one that did not: the API's
    URL in the settings, also for threads started without this context (a flow run in a thread)."""
    from prefect.context import _temporary_global_settings_context, get_settings_context
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: url}):  # noqa: SIM117 - the second reads the first
        with _temporary_global_settings_context(get_settings_context()):
            try:
                yield
            finally:
                _drain_logs_and_events()


def _drain_logs_and_events() -> None:
    """Send the run logs and events still queued in this process before it stops using the API."""
    import inspect

    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.utilities.asyncutils import run_coro_as_sync

    async def drain() -> None:
        try:
            result = APILogWorker.instance().drain()
            if inspect.isawaitable(result):
                await result
        except RuntimeError:  # never started in this process
            pass
        result = EventsWorker.drain_all()
        if inspect.isawaitable(result):
            await result

    run_coro_as_sync(drain())


def _wait_for_the_others(folder: Path, me: int) -> None:
    """The owner's session is over: the API stops once every other process that uses it is done
    (or gone: a crashed worker does not keep it up)."""
    deadline = time.monotonic() + WAIT_FOR_USERS_SECONDS
    while time.monotonic() < deadline:
        with locked_record(folder, "prefect-api") as record:
            state = _read(record)
            others = [pid for pid in state.get("users", []) if pid != me and _alive(pid)]  # type: ignore[attr-defined]
            if not others:
                record.unlink(missing_ok=True)  # a process that comes later starts a new one
                return
        time.sleep(0.5)
