"""Ctrl-C (SIGINT) and SIGTERM on `imgsearch index` and `imgsearch serve`, at each
phase of their work, sent to the command's process only (as `kill` does) or to its
whole process group (as a terminal's Ctrl-C does): the command stops within seconds,
no child it started (Prefect's temporary API above all) outlives it, nothing is
lost, and the terminal shows no TensorFlow start-up noise on the way.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import httpx
import psutil
import pytest

from imgsearch.processes import free_port
from imgsearch.runtime import is_noise
from imgsearch.samples import Photo
from tests.conftest import seed_prefect_home, write_folder
from tests.test_deployments import clean_env

IMGSEARCH = str(Path(sys.executable).parent / "imgsearch")
pytestmark = pytest.mark.usefixtures("weights")


class Command:
    """A running `imgsearch` process whose stderr and descendants are watched."""

    def __init__(self, arguments: list[str], env: dict[str, str], cwd: Path) -> None:
        # A session of its own, as a shell gives a foreground job: a signal to its group
        # reaches the command and its children, never this test.
        self.process = subprocess.Popen([IMGSEARCH, *arguments], env=env, cwd=cwd, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, start_new_session=True)
        self.lines: list[str] = []  # stderr
        self.output: list[str] = []  # stdout
        self.descendants: dict[int, str] = {}
        threading.Thread(target=self._read, args=(self.process.stderr, self.lines), daemon=True).start()
        threading.Thread(target=self._read, args=(self.process.stdout, self.output), daemon=True).start()

    @staticmethod
    def _read(stream: IO[str] | None, lines: list[str]) -> None:
        assert stream is not None
        for line in stream:
            lines.append(line)  # noqa: PERF402 - one at a time: the test watches them arrive

    def watch(self) -> None:
        try:
            for child in psutil.Process(self.process.pid).children(recursive=True):
                self.descendants.setdefault(child.pid, " ".join(child.cmdline()[:4]))
        except psutil.Error:
            pass

    def wait_for(self, ready: Callable[[], bool], seconds: float = 240) -> None:
        deadline = time.monotonic() + seconds
        while not ready():
            self.watch()
            assert self.process.poll() is None, "".join(self.lines)[-3000:]
            assert time.monotonic() < deadline, "".join(self.lines)[-3000:]
            time.sleep(0.1)
        self.watch()

    def said(self, text: str) -> bool:
        return any(text in line for line in self.lines + self.output)

    def stop(self, number: int, seconds: float = 30, group: bool = False) -> int:
        """Signal the command (`group`: and every process of its group, as a terminal's
        Ctrl-C does); it must end within `seconds` (Prefect's log worker once retried
        queued run logs against the stopped API for 76 s at exit)."""
        if group:
            os.killpg(self.process.pid, number)
        else:
            self.process.send_signal(number)
        code = self.process.wait(timeout=seconds)
        time.sleep(0.5)
        return code

    def survivors(self) -> list[str]:
        alive = []
        for pid, command in self.descendants.items():
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    alive.append(f"{pid} {command}")
            except psutil.NoSuchProcess:
                pass
        return alive

    def noise(self) -> list[str]:
        return [line for line in self.lines if is_noise(line.encode())]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    # No PREFECT_API_URL: the command starts Prefect's temporary API, the child at stake.
    return clean_env(DATA_DIR=str(tmp_path / "data"), PREFECT_HOME=str(tmp_path / "prefect"))


@pytest.fixture
def migrated_env(env: dict[str, str], tmp_path: Path, prefect_home_template: Path) -> dict[str, str]:
    """`env` with a PREFECT_HOME whose database is already migrated, as a user's `~/.prefect` is
    after the first run: the temporary API then starts without the ~5 CPU-s of migrating."""
    seed_prefect_home(prefect_home_template, tmp_path)
    return env


@pytest.mark.parametrize("phase,number,group", [
    ("api-starting", signal.SIGINT, False), ("chunks", signal.SIGTERM, False), ("chunks", signal.SIGINT, True),
])
def test_index_stops_cleanly_and_a_run_after_finishes(request: pytest.FixtureRequest, tmp_path: Path,
                                                       photos: list[Photo], phase: str, number: int,
                                                       group: bool, prefect_api_url: str) -> None:
    # To the group, Prefect's temporary API used to die with the keystroke while the run still
    # talked to it: the command took 3.5 minutes to exit, printing connection errors. While the
    # API starts, a user's first run (a new PREFECT_HOME, migrated then) is the one tested.
    env = request.getfixturevalue("env" if phase == "api-starting" else "migrated_env")
    write_folder(tmp_path / "photos", photos, 64)
    command = Command(["index", str(tmp_path / "photos"), "--chunk-size", "8"], env, tmp_path)
    marker = "Starting temporary server" if phase == "api-starting" else "chunk 1/"
    command.wait_for(lambda: command.said(marker))
    code = command.stop(number, group=group)
    assert code == 128 + number and command.said("imgsearch: interrupted"), "".join(command.lines)[-2000:]
    assert not command.said("Error logging to API"), "".join(command.lines)[-2000:]
    assert command.survivors() == []
    assert command.noise() == []
    if phase != "chunks":
        return
    # What is at stake now is the stores, not the temporary API (stopped and checked above): the run
    # after reports to the session's API, sparing a second temporary API's start (about 5 CPU-s).
    again = subprocess.run([IMGSEARCH, "index", str(tmp_path / "photos"), "--json"], cwd=tmp_path,
                           env={**env, "PREFECT_API_URL": prefect_api_url},
                           capture_output=True, text=True, timeout=600, check=False)
    assert again.returncode == 0, again.stderr[-2000:]
    summary = json.loads(again.stdout)
    assert summary["indexed"] + summary["skipped"] == 64 and summary["failed"] == 0


@pytest.mark.parametrize("phase,number", [("startup", signal.SIGINT), ("indexing", signal.SIGTERM)])
def test_serve_stops_cleanly(request: pytest.FixtureRequest, tmp_path: Path, photos: list[Photo], phase: str,
                             number: int) -> None:
    env = request.getfixturevalue("migrated_env" if phase == "indexing" else "env")  # its index run starts the API
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = Command(["serve", "--port", str(port)], env, tmp_path)
    if phase == "startup":  # the lifespan builds the model meanwhile
        command.wait_for(lambda: command.said("Waiting for application startup"))
    else:
        write_folder(tmp_path / "photos", photos, 64)
        command.wait_for(lambda: _answers(f"{url}/health"))
        run = httpx.post(f"{url}/api/index", json={"path": str(tmp_path / "photos")}, timeout=120)
        assert run.status_code == 202, run.text
        status_url = f"{url}{run.json()['status_url']}"
        command.wait_for(lambda: (httpx.get(status_url, timeout=30).json()["processed"] or 0) > 0)
    code = command.stop(number)
    assert code in (0, 128 + number, -number), "".join(command.lines)[-2000:]
    assert not command.said("Error logging to API"), "".join(command.lines)[-2000:]
    assert command.survivors() == []
    assert command.noise() == []
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/health", timeout=5)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_search_prints_no_tensorflow_noise_unless_verbose(tmp_path: Path, photos: list[Photo],
                                                          env: dict[str, str]) -> None:
    query = write_folder(tmp_path / "q", photos, 1)[0]
    # The default precision runs on LiteRT and never imports TensorFlow: quiet, but for --verbose.
    lite = subprocess.run([IMGSEARCH, "search", str(query)], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, check=False)
    assert lite.returncode == 0 and lite.stderr == "", lite.stderr
    told = subprocess.run([IMGSEARCH, "--verbose", "search", str(query)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300, check=False)
    assert told.returncode == 0 and "XNNPACK" in told.stderr, told.stderr
    env = {**env, "PRECISION": "fp32"}  # TensorFlow's own start-up lines, filtered
    quiet = subprocess.run([IMGSEARCH, "search", str(query)], env=env, cwd=tmp_path,
                           capture_output=True, text=True, timeout=300, check=False)
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    loud = subprocess.run([IMGSEARCH, "--verbose", "search", str(query)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300, check=False)
    assert loud.returncode == 0 and any(is_noise(line.encode()) for line in loud.stderr.splitlines())
    # The level in `.env`, read by the command itself: on LiteRT (no TensorFlow to start), its XNNPACK line.
    (tmp_path / ".env").write_text("IMGSEARCH_LOG_LEVEL=debug\n")
    from_dotenv = subprocess.run([IMGSEARCH, "search", str(query)], env={**env, "PRECISION": "dynamic"}, cwd=tmp_path,
                                 capture_output=True, text=True, timeout=300, check=False)
    assert from_dotenv.returncode == 0 and "XNNPACK" in from_dotenv.stderr, from_dotenv.stderr


@pytest.mark.parametrize("line,noise", [
    (b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n", True),
    (b"I0000 00:00:1795602697.201634    7344 port.cc:153] oneDNN custom operations are on.\n", True),
    (b"I0000 00:00:1795602697.202643    7344 cudart_stub.cc:31] Could not find cuda drivers on your machine\n", True),
    (b"E0000 00:00:1795602699.293206    7344 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error\n",
     True),
    (b"W0000 00:00:1795602699.293206    7344 cpu_feature_guard.cc:1] This TensorFlow binary is optimized\n", True),
    (b"E0000 00:00:1795602699.293206    7344 op_kernel.cc:1] Out of memory while allocating\n", False),
    (b"F0000 00:00:1795602699.293206    7344 check.cc:1] Check failed\n", False),
    (b"Traceback (most recent call last):\n", False),
    (b"imgsearch: error: no such image\n", False),
])
def test_only_startup_noise_is_filtered(line: bytes, noise: bool) -> None:
    assert is_noise(line) is noise


@pytest.mark.parametrize("level,expected", [("", "2"), ("debug", "0"), ("DEBUG", "0")])
def test_processes_started_from_imgsearch_inherit_the_log_level(level: str, expected: str) -> None:
    """Dask and uvicorn workers import imgsearch themselves: the level reaches TensorFlow there too."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IMGSEARCH_", "TF_CPP"))}
    env["IMGSEARCH_LOG_LEVEL"] = level
    shown = subprocess.run([sys.executable, "-c", "import os, imgsearch; print(os.environ['TF_CPP_MIN_LOG_LEVEL'])"],
                           env=env, capture_output=True, text=True, check=True)
    assert shown.stdout.strip() == expected
