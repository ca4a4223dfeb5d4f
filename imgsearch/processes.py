"""The processes `imgsearch` starts (the stack of `up`, the bench's servers): free ports,
and waiting for them to be ready."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable

import httpx

Process = subprocess.Popen[bytes] | subprocess.Popen[str]


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(ready: Callable[[], bool], process: Process, seconds: float, what: str) -> None:
    """Poll `ready` until it holds; fail early if `process` exits first, or after `seconds`."""
    deadline = time.monotonic() + seconds
    while not ready():
        if process.poll() is not None:
            command = process.args if isinstance(process.args, (list, tuple)) else [process.args]
            raise RuntimeError(f"{' '.join(str(part) for part in command)} exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready within {seconds:g} s")
        time.sleep(0.3)


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def listens(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((host, port)) == 0


def wait_until_healthy(url: str, process: Process, seconds: float = 180) -> None:
    """Poll `url` until it answers 200."""
    wait_until(lambda: answers(url), process, seconds, url)
