"""`imgsearch up` / `down`: the local stack on loopback, started and stopped in order.

Prefect server (UI) -> milvus-lite server (so several processes share the
data directory) -> search app -> deployment runner. Each runs in its own
process group with its log under DATA_DIR/logs; stopping sends SIGTERM to each
group in reverse order, then SIGKILL to whatever is left.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from cli.processes import listens, wait_until, wait_until_healthy

BIN = Path(sys.executable).parent


class StackError(RuntimeError):
    """The stack could not start or stop; the message says which service and where its log is."""
HOST = "127.0.0.1"


@dataclass
class Service:
    name: str
    command: list[str]
    health: str | None  # http URL answering 200, "tcp:PORT", or None (alive is enough)
    env: dict[str, str] = field(default_factory=dict)


def services(data_dir: Path, prefect_port: int, milvus_port: int, app_port: int,
             sync_path: str | None) -> list[Service]:
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
                           "--host", HOST, "--port", str(milvus_port)], f"tcp:{milvus_port}"),
        Service("search", [str(BIN / "imgsearch"), "serve", "--host", HOST, "--port", str(app_port)],
                f"http://{HOST}:{app_port}/health", shared),
        # Ready once every deployment is registered (the runner registers them one by one).
        Service("runner", runner, f"deployments:http://{HOST}:{prefect_port}/api", shared),
    ]


def deployments_registered(api: str) -> bool:
    from deployments.definitions import definitions

    try:
        found = httpx.post(f"{api}/deployments/filter", json={}, timeout=5).json()
    except (httpx.HTTPError, ValueError):
        return False
    return {item.name for item in definitions()} <= {deployment.get("name") for deployment in found}


def state_file(data_dir: Path) -> Path:
    return data_dir / "stack.json"


def start(stack: list[Service], data_dir: Path) -> dict[str, int]:
    """Start every service in order, each healthy before the next; return name -> pid."""
    logs = data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    started: dict[str, int] = {}
    try:
        for service in stack:
            log = open(logs / f"{service.name}.log", "ab")
            process = subprocess.Popen(service.command, env={**os.environ, **service.env}, stdout=log,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
            started[service.name] = process.pid
            state_file(data_dir).write_text(json.dumps(started))
            try:
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
            except (RuntimeError, TimeoutError) as error:
                raise StackError(f"{service.name} did not start ({error}); see {logs / service.name}.log") from None
    except BaseException:
        stop(started)
        state_file(data_dir).unlink(missing_ok=True)
        raise
    return started


def stop(started: dict[str, int], grace: float = 20) -> None:
    """SIGTERM each process group in reverse order, then SIGKILL what is left."""
    for name in reversed(list(started)):
        group = started[name]
        try:
            os.killpg(group, signal.SIGTERM)
        except ProcessLookupError:
            continue
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and _group_alive(group):
            time.sleep(0.2)
        if _group_alive(group):
            try:
                os.killpg(group, signal.SIGKILL)
            except ProcessLookupError:
                pass


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
       detach: bool) -> int:
    data_dir = data_dir.resolve()
    if state_file(data_dir).exists():
        raise StackError(f"a stack seems to run already ({state_file(data_dir)}); `imgsearch down` first")
    started = start(services(data_dir, prefect_port, milvus_port, app_port, sync_path), data_dir)
    print(f"Prefect UI     http://{HOST}:{prefect_port}\n"
          f"search page    http://{HOST}:{app_port}/   (API docs /docs)\n"
          f"Milvus         http://{HOST}:{milvus_port}\n"
          f"logs           {data_dir / 'logs'}\n"
          f"to use it from a shell: export PREFECT_API_URL=http://{HOST}:{prefect_port}/api "
          f"MILVUS_URI=http://{HOST}:{milvus_port}", flush=True)
    if detach:
        print("running in the background; `imgsearch down` stops it", flush=True)
        return 0

    def on_signal(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        while all(_group_alive(pid) for pid in started.values()):
            time.sleep(1)
        print("imgsearch: a service stopped; stopping the stack", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        stop(started)
        state_file(data_dir).unlink(missing_ok=True)
        print("stack stopped", flush=True)


def down(data_dir: Path) -> int:
    path = state_file(data_dir.resolve())
    if not path.exists():
        raise StackError(f"no stack is running from {data_dir} (no {path.name})")
    stop(json.loads(path.read_text()))
    path.unlink(missing_ok=True)
    print("stack stopped")
    return 0
