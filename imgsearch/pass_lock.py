"""Who runs the model next: one forward pass at a time, searches first, index chunks in order."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

# How long a younger chunk's pass waits for an older chunk that holds a turn but is
# not waiting right now (between two of its batches). Longer than the gap between
# batches when decoding keeps up (a millisecond or two), short against one pass
# (12 ms at the fastest precision's batch of 8 here, a second for fp32's 32): if
# the older chunk is stalled on a slow read, the model works for the younger one.
PATIENCE_SECONDS = 0.05


class PassLock:
    """One forward pass at a time; urgent waiters first, but never more than
    `urgent_run` urgent passes in a row while a normal one waits, so that a
    steady stream of searches slows an index run down without stopping it.

    Among normal passes the earliest `since` goes first, and an index chunk holds
    a `turn` through its model phase: the older chunk finishes its model work while
    the younger one waits, so that one chunk's reading and writing overlap the
    other's model time. Shared pass by pass, two chunks would stay in step: they
    would read at once and write at once, and the model would stand idle through both.
    """

    def __init__(self, urgent_run: int = 2, patience: float = PATIENCE_SECONDS) -> None:
        self._state = threading.Condition()
        self._held = False
        self._urgent_waiting = 0
        self._urgent_in_a_row = 0
        self._urgent_run = urgent_run
        self._patience = patience
        self._normal_since: list[float] = []  # one entry per waiting normal pass
        self._turns: list[float] = []  # one entry per chunk in its model phase
        self._freed_at = 0.0  # time.monotonic() when the last pass ended

    @contextmanager
    def turn(self, since: float) -> Iterator[None]:
        """A chunk's model phase: until it ends, passes of chunks that started later
        wait for this one's (at most `patience` each, when this one is not waiting)."""
        with self._state:
            self._turns.append(since)
        try:
            yield
        finally:
            with self._state:
                self._turns.remove(since)
                self._state.notify_all()

    @contextmanager
    def hold(self, urgent: bool, since: float = 0.0) -> Iterator[None]:
        with self._state:
            if urgent:
                self._urgent_waiting += 1
            else:
                self._normal_since.append(since)
            try:
                while not self._may_go(urgent, since, patient=self._patient()):
                    # Patience counts from when the model became free, not from when this
                    # pass began to wait: an older chunk's next pass is due after its last.
                    left = self._freed_at + self._patience - time.monotonic()
                    self._state.wait(left if left > 0 and not self._held else None)
            finally:
                if urgent:
                    self._urgent_waiting -= 1
                else:
                    self._normal_since.remove(since)
            self._held = True
            self._urgent_in_a_row = self._urgent_in_a_row + 1 if urgent else 0
        try:
            yield
        finally:
            with self._state:
                self._held = False
                self._freed_at = time.monotonic()
                self._state.notify_all()

    def _patient(self) -> bool:
        return time.monotonic() < self._freed_at + self._patience

    @property
    def urgent_waiting(self) -> int:
        return self._urgent_waiting

    @property
    def normal_waiting(self) -> int:
        return len(self._normal_since)

    def _may_go(self, urgent: bool, since: float, *, patient: bool) -> bool:
        if self._held:
            return False
        starving = bool(self._normal_since) and self._urgent_in_a_row >= self._urgent_run
        if urgent:
            return not starving
        if self._urgent_waiting and not starving:
            return False
        if since > min(self._normal_since):
            return False
        return not (patient and self._turns and since > min(self._turns))
