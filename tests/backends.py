"""Backends the fault tests may stop and start at will: a milvus-lite server and a
private MariaDB, each on its own loopback port with its own data directory.

The machine's shared MariaDB is never restarted: other tests (and other
sessions' CI) use it. Both servers here keep their data across a restart, as a
real server does, so a test sees what survives an outage.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Self

from imgsearch.processes import free_port, listens, wait_until

BIN = Path(sys.executable).parent
MARIADBD = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
INSTALL_DB = shutil.which("mariadb-install-db") or "/usr/bin/mariadb-install-db"


class ServerProcess:
    """One server process on a fixed port that can be stopped (gracefully or with
    SIGKILL) and started again on the same port and data."""

    name = "server"

    def __init__(self, base: Path) -> None:
        self.base = base
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log = base / f"{self.name}.log"

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self, seconds: float = 60) -> None:
        assert self.process is None or self.process.poll() is not None, "already running"
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        wait_until(lambda: listens(self.port), self.process, seconds, f"{self.name} on port {self.port}")

    def stop(self, kill: bool = False) -> None:
        """Stop the server; `kill` is a crash (SIGKILL), otherwise a clean shutdown."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def restart(self, kill: bool = False) -> None:
        self.stop(kill)
        self.start()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


class MilvusLiteServer(ServerProcess):
    """`milvus-lite server`: Milvus Lite behind gRPC, so several processes share it."""

    name = "milvus-lite"

    def __init__(self, base: Path) -> None:
        super().__init__(base)
        self.data = base / "milvus.db"

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [str(BIN / "milvus-lite"), "server", "--data-dir", str(self.data),
                "--host", "127.0.0.1", "--port", str(self.port)]


class PrivateMariaDB(ServerProcess):
    """A MariaDB of the test's own (mariadb-install-db + mariadbd), root without a password."""

    name = "mariadb"

    def __init__(self, base: Path) -> None:
        super().__init__(base)
        self.data = base / "mariadb"
        subprocess.run(
            [INSTALL_DB, "--no-defaults", f"--datadir={self.data}", "--user=root",
             "--auth-root-authentication-method=normal", "--skip-test-db"],
            check=True, capture_output=True,
        )

    @property
    def url(self) -> str:
        return f"mysql+pymysql://root:@127.0.0.1:{self.port}/imgsearch?charset=utf8mb4"

    def command(self) -> list[str]:
        return [MARIADBD, "--no-defaults", f"--datadir={self.data}", "--user=root",
                f"--port={self.port}", "--bind-address=127.0.0.1", f"--socket={self.base / 'mariadb.sock'}",
                f"--pid-file={self.base / 'mariadb.pid'}", "--innodb-buffer-pool-size=32M",
                "--innodb-log-file-size=8M", "--skip-name-resolve"]

    def start(self, seconds: float = 60) -> None:
        super().start(seconds)
        subprocess.run(
            ["mariadb", "-h127.0.0.1", f"-P{self.port}", "-uroot", "-e",
             "CREATE DATABASE IF NOT EXISTS imgsearch CHARACTER SET utf8mb4"],
            check=True, capture_output=True,
        )
