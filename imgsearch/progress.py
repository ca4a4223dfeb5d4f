"""How a long operation reports where it is: a callback told (stage, done, total), and the one that
tells no one. The CLI turns it into a progress bar (duplicates, migrate)."""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[str, int, int], None]


def quiet(_stage: str, _done: int, _total: int) -> None:
    """The progress callback of a caller that shows none."""
