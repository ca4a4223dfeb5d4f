"""What a folder watcher decides, apart from the events themselves and the runs.

Changed paths wait until they are quiet, then go out together as one batch per
watched folder. Quiet means no event for the path for `QUIET_SECONDS` and no write
to it either (its inode's ctime, which a writer cannot set back, is that old): a
copy still in progress is not indexed half, whether its events came from inotify
or from a poll. A batch waits for every changed path, so that both ends of a move
(the old path gone, the new one added) reach the same sync run, which gives the
new path the old one's vector; a path written without pause for `LONGEST_WAIT`
lets the quiet ones go without it.

inotify needs one watch per folder, from a per-user budget
(`fs.inotify.max_user_watches`); a tree with more folders than that would miss
changes in some of them without a word, so such a tree is polled instead, said
in one line with the number needed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from imgsearch.discover import is_within

QUIET_SECONDS = 0.5
LONGEST_WAIT = 10.0  # a path changing all the time holds back the others at most this long
POLL_SECONDS = 2.0  # between two walks of a polled tree
RETRY_SECONDS = 10.0  # a batch whose run failed is tried again after this
# A batch of more paths than this (a library copied in file by file) is synced whole: one walk
# of the tree is cheaper than a path-by-path look, and the flow run's parameters stay small.
WHOLE_TREE_ABOVE = 5_000
WATCH_LIMIT_FILE = "/proc/sys/fs/inotify/max_user_watches"
WATCH_HEADROOM = 1024  # other programs (editors, IDEs, desktop indexers) hold watches too


@dataclass
class _Waiting:
    root: str
    last_event: float  # monotonic
    first_event: float


@dataclass
class Changes:
    """Changed paths under the watched roots, waiting to be quiet."""

    roots: list[str]
    waiting: dict[str, _Waiting] = field(default_factory=dict)

    def add(self, paths: Iterable[str], now: float | None = None) -> int:
        """Note an event for each path under a root (others are ignored); how many were noted."""
        now = time.monotonic() if now is None else now
        noted = 0
        for path in paths:
            root = self.root_of(path)
            if root is None:
                continue
            earlier = self.waiting.get(path)
            self.waiting[path] = _Waiting(root, now, earlier.first_event if earlier else now)
            noted += 1
        return noted

    def root_of(self, path: str) -> str | None:
        """The deepest watched root holding `path`."""
        holding = [root for root in self.roots if is_within(path, root)]
        return max(holding, key=len) if holding else None

    def quiet(self, path: str, now: float, wall_now: float | None = None) -> bool:
        waiting = self.waiting[path]
        if now - waiting.last_event < QUIET_SECONDS:
            return False
        return last_write_age(path, wall_now) >= QUIET_SECONDS

    def take(self, now: float | None = None, wall_now: float | None = None) -> dict[str, list[str]]:
        """The batch to run now, by root: every waiting path once all are quiet; the quiet ones
        alone once some path has waited `LONGEST_WAIT`; else nothing (the batch keeps growing)."""
        now = time.monotonic() if now is None else now
        if not self.waiting:
            return {}
        quiet = [path for path in self.waiting if self.quiet(path, now, wall_now)]
        if len(quiet) < len(self.waiting):
            oldest = min(waiting.first_event for waiting in self.waiting.values())
            if now - oldest < LONGEST_WAIT or not quiet:
                return {}
        batch: dict[str, list[str]] = {}
        for path in sorted(quiet):
            batch.setdefault(self.waiting.pop(path).root, []).append(path)
        return batch

    def retry_later(self, paths: Iterable[str], now: float | None = None) -> None:
        """Put a failed batch's paths back, to be taken again in `RETRY_SECONDS`."""
        now = time.monotonic() if now is None else now
        self.add(paths, now + RETRY_SECONDS - QUIET_SECONDS)


def collapse(paths: Iterable[str]) -> list[str]:
    """The paths without those below another of them: a folder copied or moved in brings an
    event for itself and one for each file in it, and the folder's sync covers them all."""
    kept: list[str] = []
    for path in sorted(set(paths)):
        if kept and is_within(path, kept[-1]):
            continue
        kept.append(path)
    return kept


def last_write_age(path: str, wall_now: float | None = None) -> float:
    """Seconds since `path` was last written or renamed (its ctime); a path that is gone is old."""
    try:
        changed = os.lstat(path).st_ctime
    except OSError:
        return float("inf")
    return (time.time() if wall_now is None else wall_now) - changed


def folders_in(root: str) -> int:
    """How many folders `root` holds, itself included: the inotify watches it needs."""
    count = 0
    for _folder, _subfolders, _files in os.walk(root):
        count += 1
    return count


def watch_limit(path: str = WATCH_LIMIT_FILE) -> int | None:
    """`fs.inotify.max_user_watches`, or None where there is no inotify."""
    try:
        with open(path, encoding="ascii") as limit:
            return int(limit.read().strip())
    except (OSError, ValueError):
        return None


def polling_reason(roots: list[str], limit: int | None) -> str | None:
    """Why these roots must be polled (one line, with the number needed), or None."""
    if limit is None:
        return None
    needed = sum(folders_in(root) for root in roots)
    if needed + WATCH_HEADROOM <= limit:
        return None
    return (f"{needed:,} folders to watch, more than fs.inotify.max_user_watches={limit:,} allows; "
            f"polling every {POLL_SECONDS:g} s instead (for events, raise it to at least "
            f"{needed + WATCH_HEADROOM:,}: sudo sysctl fs.inotify.max_user_watches={needed + WATCH_HEADROOM})")
