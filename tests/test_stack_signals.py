"""Ctrl-C (SIGINT) and SIGTERM reach `imgsearch up` (foreground) in every phase:
while each service starts, while the runner registers the deployments, once up,
and again while it stops; and `imgsearch down` cleans up after `up` is killed
with SIGKILL. Each time: no process of the stack is left, every port is free,
and the state file is gone.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from imgsearch.processes import free_port, listens
from tests.conftest import seed_prefect_home
from tests.test_cli_signals import Command
from tests.test_deployments import clean_env

IMGSEARCH = str(Path(sys.executable).parent / "imgsearch")
pytestmark = pytest.mark.usefixtures("weights")
SERVICES = ["prefect", "milvus", "search", "runner"]


def group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
        return True
    except ProcessLookupError:
        return False


class Stack:
    def __init__(self, tmp_path: Path, template: Path) -> None:
        self.data = tmp_path / "data"
        seed_prefect_home(template, self.data)
        self.ports = [free_port(), free_port(), free_port()]
        self.env = clean_env(DATA_DIR=str(self.data))
        self.state = self.data / "stack.json"
        self.groups: dict[str, int] = {}
        self.command = Command(["up", "--prefect-port", str(self.ports[0]), "--milvus-port", str(self.ports[1]),
                                "--port", str(self.ports[2])], self.env, tmp_path)

    def started(self) -> list[str]:
        """Services launched so far (from the state file), remembered for the final check."""
        try:
            self.groups.update(json.loads(self.state.read_text()))
        except (OSError, ValueError):
            pass
        return list(self.groups)

    def wait_until_launched(self, service: str) -> None:
        self.command.wait_for(lambda: service in self.started(), seconds=300)

    def assert_nothing_left(self, gracefully: bool = True) -> None:
        """No process, port or state file left; `gracefully`: and each service ended by
        its own shutdown (`up` says which one it had to SIGKILL after 20 s: a service
        started with SIGTERM blocked did, every one of them)."""
        assert self.command.survivors() == []
        if gracefully:
            assert not self.command.said("did not stop"), "".join(self.command.lines)
        assert [name for name, group in self.groups.items() if group_alive(group)] == []
        assert [port for port in self.ports if listens(port)] == []
        assert not self.state.exists()


@pytest.mark.parametrize("service,number", [
    ("prefect", signal.SIGINT), ("milvus", signal.SIGTERM), ("search", signal.SIGINT), ("runner", signal.SIGTERM),
])
def test_a_signal_while_starting_stops_what_started(tmp_path: Path, prefect_home_template: Path, service: str,
                                                    number: int) -> None:
    stack = Stack(tmp_path, prefect_home_template)
    stack.wait_until_launched(service)
    assert not stack.command.said("Prefect UI"), "still starting"
    code = stack.command.stop(number, seconds=120)
    assert code == 128 + number, "".join(stack.command.lines)[-2000:]  # 130 for Ctrl-C, 143 for SIGTERM
    assert stack.command.said("stack stopped")
    stack.assert_nothing_left()


def test_a_signal_once_up_and_another_while_stopping(tmp_path: Path, prefect_home_template: Path) -> None:
    stack = Stack(tmp_path, prefect_home_template)
    stack.command.wait_for(lambda: stack.command.said("Prefect UI"), seconds=300)
    assert stack.started() == SERVICES
    stack.command.process.send_signal(signal.SIGINT)
    # Stopping now, in reverse order: once the runner is gone, a second signal
    # must not abort the stop of the rest (it only shortens their grace).
    stack.command.wait_for(lambda: not group_alive(stack.groups["runner"]), seconds=60)
    code = stack.command.stop(signal.SIGTERM, seconds=60)
    assert code == 0, "".join(stack.command.lines)[-2000:]
    assert stack.command.said("stack stopped")
    stack.assert_nothing_left(gracefully=False)  # the second signal skips the grace on purpose


def test_busy_ports_are_refused_before_anything_starts(tmp_path: Path, prefect_home_template: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = clean_env(DATA_DIR=str(tmp_path / "data"))
        refused = subprocess.run([IMGSEARCH, "up", "--milvus-port", str(port)], env=env, cwd=tmp_path,
                                 capture_output=True, text=True, timeout=120, check=False)
    assert refused.returncode == 1 and f"port {port} is in use" in refused.stderr and "--milvus-port" in refused.stderr
    assert not (tmp_path / "data" / "stack.json").exists()


def test_down_cleans_up_after_up_is_killed(tmp_path: Path, prefect_home_template: Path) -> None:
    stack = Stack(tmp_path, prefect_home_template)
    stack.wait_until_launched("runner")
    stack.command.process.kill()
    stack.command.process.wait(timeout=30)
    assert stack.state.exists()
    down = subprocess.run([IMGSEARCH, "down"], env=stack.env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=200, check=False)
    assert down.returncode == 0, down.stderr
    # Every service of ours stops on SIGTERM. Prefect's runner, registered and idle, once
    # took over 20 s of its own graceful shutdown in a fresh-clone run (1 of 3; not
    # reproduced in 13 direct tries): `down` then kills it, which this still checks.
    slow = [line for line in down.stderr.splitlines() if "did not stop" in line]
    assert all(line.startswith("imgsearch: runner ") for line in slow), down.stderr
    stack.assert_nothing_left(gracefully=False)
