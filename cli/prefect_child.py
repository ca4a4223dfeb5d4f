"""Prefect's temporary API in a session of its own, away from the terminal's Ctrl-C.

With no `PREFECT_API_URL`, Prefect starts a temporary API server as a child process
(`SubprocessASGIServer`) in this process' group. A terminal sends Ctrl-C to the whole
foreground group, so the API died with the keystroke while the run still had states,
events and logs to send it: `imgsearch index` took 3.5 minutes to exit, printing
connection errors and a traceback. In a session of its own the API hears no terminal
signal, and the command stops it when it ends: Prefect's own `atexit` stop, or
`_stop_children` after an interrupt.
"""

from __future__ import annotations

import subprocess
import types
from typing import Any


class _OwnSessionPopen(subprocess.Popen):  # type: ignore[type-arg]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("start_new_session", True)
        super().__init__(*args, **kwargs)


def detach_temporary_api() -> None:
    """Make the temporary API that Prefect starts from now on start in a new session.
    Prefect's server module calls `subprocess.Popen` for that child alone; it gets a
    `subprocess` whose `Popen` asks for a new session, and everything else as it was."""
    from prefect.server.api import server

    if getattr(server.subprocess, "Popen", None) is _OwnSessionPopen:
        return
    patched = types.ModuleType("subprocess")
    patched.__dict__.update(vars(subprocess))
    patched.Popen = _OwnSessionPopen  # type: ignore[attr-defined]
    server.subprocess = patched  # type: ignore[attr-defined]
