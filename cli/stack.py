"""`imgsearch up` / `down`: the local stack on loopback, started and stopped in order.

Prefect server (UI) -> milvus-lite server (so several processes share the
data directory) -> search app -> deployment runner -> folder watcher (`--watch`). Each runs in its own
process group with its log under DATA_DIR/logs; stopping sends SIGTERM to each
group in reverse order, then SIGKILL to whatever is left.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from cli import stop_signal
from imgsearch.processes import listens, wait_until, wait_until_healthy
from imgsearch import runtime
from imgsearch.errors import ImgsearchError

BIN = Path(sys.executable).parent
STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


class StackError(ImgsearchError, RuntimeError):
    """The stack could not start or stop; the message says which service and where its log is."""
HOST = "127.0.0.1"


@dataclass
class Service:
    name: str
    command: list[str]
    health: str | None  # http URL answering 200, "tcp:PORT", or None (alive is enough)
    env: dict[str, str] = field(default_factory=dict)
    # A `milvus-lite server` imports pymilvus, which refuses a Milvus Lite path
    # in MILVUS_URI at import: it must not inherit the user's.
    imports_pymilvus_bare: bool = False

    def environment(self) -> dict[str, str]:
        base = {**os.environ, **self.env}
        return runtime.child_environment(base) if self.imports_pymilvus_bare else base


def services(data_dir: Path, prefect_port: int, milvus_port: int, app_port: int,
             sync_path: str | None, watch_paths: list[str] | None = None) -> list[Service]:
    shared = {"PREFECT_API_URL": f"http://{HOST}:{prefect_port}/api",
              "MILVUS_URI": f"http://{HOST}:{milvus_port}", "DATA_DIR": str(data_dir),
              "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    runner = [str(BIN / "imgsearch"), "deploy"] + (["--sync-path", sync_path] if sync_path else [])
    return [
        Service("prefect", [str(BIN / "prefect"), "server", "start", "--host", HOST, "--port", str(prefect_port)],
                f"http://{HOST}:{prefect_port}/api/health",
                {"PREFECT_HOME": str(data_dir / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}),
        # The embedded default keeps its data in DATA_DIR/milvus.db: served here, the same collections.
        Service("milvus", [str(BIN / "milvus-lite"), "server", "--data-dir", str(data_dir / "milvus.db"),
                           "--host", HOST, "--port", str(milvus_port)], f"tcp:{milvus_port}",
                imports_pymilvus_bare=True),
        Service("search", [str(BIN / "imgsearch"), "serve", "--host", HOST, "--port", str(app_port)],
                f"http://{HOST}:{app_port}/health", shared),
        # Ready once every deployment is registered (the runner registers them one by one).
        Service("runner", runner, f"deployments:http://{HOST}:{prefect_port}/api", shared),
    ] + ([Service("watch", [str(BIN / "imgsearch"), "watch", *watch_paths], None, shared)] if watch_paths else [])


def deployments_registered(api: str) -> bool:
    from deployments.definitions import definitions

    try:
        found = httpx.post(f"{api}/deployments/filter", json={}, timeout=5).json()
    except (httpx.HTTPError, ValueError):
        return False
    return {item.name for item in definitions()} <= {deployment.get("name") for deployment in found}


def state_file(data_dir: Path) -> Path:
    return data_dir / "stack.json"


class Interrupts:
    """SIGINT and SIGTERM as KeyboardInterrupt, except inside `held()`, which keeps
    one until the block ends. (Blocking the signals with a mask instead would be
    inherited by the services started meanwhile: they ignored SIGTERM.)"""

    def __init__(self) -> None:
        self._holding = False
        self._pending = False

    def __call__(self) -> None:
        if self._holding:
            self._pending = True
        else:
            raise KeyboardInterrupt

    @contextmanager
    def held(self) -> Iterator[None]:
        self._holding = True
        try:
            yield
        finally:
            self._holding = False
        if self._pending:
            self._pending = False
            raise KeyboardInterrupt


def start(stack: list[Service], data_dir: Path, started: dict[str, int], interrupts: Interrupts) -> None:
    """Start every service in order, each healthy before the next, recording each
    in `started` (name -> pid, also written to the state file) the moment it runs,
    so that whoever called can stop exactly what was started, however this ends."""
    logs = data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    for service in stack:
        with interrupts.held():  # a signal between the fork and the record would orphan the service
            process = _launch(service, logs, started, data_dir)
        try:
            _wait_ready(service, process)
        except (RuntimeError, TimeoutError) as error:
            raise StackError(f"{service.name} did not start ({error}); see {logs / service.name}.log") from None


def _launch(service: Service, logs: Path, started: dict[str, int], data_dir: Path) -> subprocess.Popen[bytes]:
    """Start one service and record it in `started` and the state file."""
    with open(logs / f"{service.name}.log", "ab") as log:
        process = subprocess.Popen(service.command, env=service.environment(), stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    started[service.name] = process.pid
    state_file(data_dir).write_text(json.dumps(started))
    return process


def _wait_ready(service: Service, process: subprocess.Popen[bytes]) -> None:
    if service.health and service.health.startswith("tcp:"):
        port = int(service.health[4:])
        wait_until(lambda: listens(port), process, 60, f"port {port}")
    elif service.health and service.health.startswith("deployments:"):
        api = service.health.removeprefix("deployments:")
        wait_until(lambda: deployments_registered(api), process, 180, "the deployments")
    elif service.health:
        wait_until_healthy(service.health, process)
    else:
        time.sleep(2)
        if process.poll() is not None:
            raise RuntimeError(f"exited with {process.returncode}")


def stop(started: dict[str, int], grace: float = 20) -> None:
    """SIGTERM each process group in reverse order, then SIGKILL what is left.

    Ctrl-C or SIGTERM while stopping does not abort the stop (that would leave
    the remaining services running): it skips the grace period instead."""
    hurry = threading.Event()
    previous = _handle_stop_signals(lambda: hurry.set())
    try:
        for name in reversed(list(started)):
            group = started[name]
            try:
                os.killpg(group, signal.SIGTERM)
            except ProcessLookupError:
                continue
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and _group_alive(group) and not hurry.is_set():
                time.sleep(0.2)
            if _group_alive(group):
                if not hurry.is_set():
                    print(f"imgsearch: {name} did not stop within {grace:g} s of SIGTERM; killing it",
                          file=sys.stderr, flush=True)
                try:
                    os.killpg(group, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            while _group_alive(group) and time.monotonic() < deadline + 5:
                time.sleep(0.05)  # SIGKILLed: gone in a moment; its ports are free once it is
    finally:
        _restore(previous)


def _handle_stop_signals(action: Callable[[], None]) -> dict[int, Any]:
    """Route SIGINT and SIGTERM to `action`; return the handlers to put back."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def handler(signum: int, _frame: object) -> None:
        stop_signal.record(signum)
        action()

    return {number: signal.signal(number, handler) for number in STOP_SIGNALS}


def _restore(previous: dict[int, Any]) -> None:
    for number, handler in previous.items():
        signal.signal(number, handler)


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie leader (our own child) counts as gone once reaped
        os.waitpid(group, os.WNOHANG)
    except ChildProcessError:
        pass
    try:
        os.killpg(group, 0)
        return True
    except ProcessLookupError:
        return False


def up(data_dir: Path, prefect_port: int, milvus_port: int, app_port: int, sync_path: str | None,
       detach: bool, watch_paths: list[str] | None = None) -> int:
    data_dir = data_dir.resolve()
    if state_file(data_dir).exists():
        raise StackError(f"a stack seems to run already ({state_file(data_dir)}); `imgsearch down` first")

    # A service answering on a busy port would be another program's, taken for ours.
    for flag, port in (("--prefect-port", prefect_port), ("--milvus-port", milvus_port), ("--port", app_port)):
        if listens(port):
            raise StackError(f"port {port} is in use by another program; choose another with {flag}")
    # From the first moment, SIGTERM is Ctrl-C: whatever phase it lands in, the
    # `finally` below stops every service recorded so far.
    interrupts = Interrupts()
    previous = _handle_stop_signals(interrupts)
    started: dict[str, int] = {}
    left_running = False
    try:
        start(services(data_dir, prefect_port, milvus_port, app_port, sync_path, watch_paths), data_dir, started,
              interrupts)
        print(f"Prefect UI     http://{HOST}:{prefect_port}\n"
              f"search page    http://{HOST}:{app_port}/   (API docs /docs)\n"
              f"Milvus         http://{HOST}:{milvus_port}\n"
              f"logs           {data_dir / 'logs'}\n"
              f"to use it from a shell: export PREFECT_API_URL=http://{HOST}:{prefect_port}/api "
              f"MILVUS_URI=http://{HOST}:{milvus_port}", flush=True)
        if detach:
            left_running = True
            print("running in the background; `imgsearch down` stops it", flush=True)
            return 0
        return _run_until_stopped(started)
    finally:
        if not left_running:
            stop(started)
            state_file(data_dir).unlink(missing_ok=True)
            if started:
                print("stack stopped", flush=True)
        _restore(previous)


def _run_until_stopped(started: dict[str, int]) -> int:
    """Wait while every service runs: 0 when stopped by Ctrl-C or SIGTERM, 1 when a service died."""
    try:
        while all(_group_alive(pid) for pid in started.values()):
            time.sleep(1)
    except KeyboardInterrupt:
        return 0
    print("imgsearch: a service stopped; stopping the stack", file=sys.stderr)
    return 1


def down(data_dir: Path) -> int:
    path = state_file(data_dir.resolve())
    if not path.exists():
        raise StackError(f"no stack is running from {data_dir} (no {path.name})")
    stop(json.loads(path.read_text()))
    path.unlink(missing_ok=True)
    print("stack stopped")
    return 0
