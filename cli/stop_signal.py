"""Which stop signal ended the command, so that its exit status says so: 128 + the
signal's number, as a shell reports it (130 for Ctrl-C, 143 for SIGTERM)."""

from __future__ import annotations

import signal

_received: list[int] = []


def record(signum: int) -> None:
    """Called by every SIGINT and SIGTERM handler of the CLI; the first one counts."""
    if not _received:
        _received.append(signum)


def received() -> bool:
    """Whether a stop signal came: after one, any failure is the interrupt."""
    return bool(_received)


def exit_status() -> int:
    """128 + the first stop signal received; a KeyboardInterrupt without one is Ctrl-C."""
    return 128 + (_received[0] if _received else signal.SIGINT)
