"""`imgsearch watch`: file-system events -> quiet batches -> one `sync-folder` flow run each.

The listener (the Rust notify crate through watchfiles, in a thread) only queues
events. The main thread catches up first, with the same sync run as the nightly
deployment, then turns queued events into batches (imgsearch.watching) and runs
each through `sync_folder(..., only=paths)`: the index and delete logic of every
other run, narrowed to what changed. Events that arrive during a run wait in the
queue. Whatever was queued when the watcher stops is found again by the catch-up
of its next start, which compares the whole tree with the catalog.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from imgsearch import failpoints, watching
from imgsearch.discover import canonical_path
from imgsearch.errors import BadInput, ImgsearchError

if TYPE_CHECKING:
    from watchfiles import Change

WAIT_STEP_MS = 50  # a group of events is handed over after this long without a new one
GROUP_MS = 1_000  # ... or after this long in all


class WatchError(BadInput):
    """A path that cannot be watched: missing or not a folder."""


@dataclass
class Listener:
    """watchfiles' Rust watcher, read in a thread into `events`."""

    roots: list[str]
    polling: bool
    poll_seconds: float

    def __post_init__(self) -> None:
        from watchfiles import DefaultFilter
        from watchfiles._rust_notify import RustNotify  # documented: watchfiles' "Rust backend"

        self.events: queue.Queue[set[tuple[int, str]]] = queue.Queue()
        self.failure: BaseException | None = None
        self._stop = threading.Event()
        self._filter = DefaultFilter()  # editors' swap and backup files, .git, __pycache__, ...
        # Created here, in the caller's thread: the watches exist once this returns, before the
        # catch-up walks the tree, so nothing written meanwhile falls between the two.
        self._notify = RustNotify(self.roots, False, self.polling, int(self.poll_seconds * 1000), True, True)
        self._thread = threading.Thread(target=self._run, name="imgsearch-watch-listener", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from watchfiles import Change

        try:
            while not self._stop.is_set():
                found = self._notify.watch(GROUP_MS, WAIT_STEP_MS, 500, self._stop)
                if isinstance(found, set):
                    kept = {(change, path) for change, path in found
                            if self._filter(Change(change), path) and not _folder_touched(Change(change), path)}
                    if kept:
                        self.events.put(kept)
        except BaseException as error:  # noqa: BLE001 - handed to the main thread, which stops
            self.failure = error

    def drain(self, wait: float) -> list[str]:
        """Changed paths queued so far, waiting up to `wait` seconds for the first."""
        paths: list[str] = []
        try:
            group = self.events.get(timeout=wait)
            while True:
                paths += [path for _change, path in group]
                group = self.events.get_nowait()
        except queue.Empty:
            pass
        if self.failure is not None:
            raise ImgsearchError(f"the file-system watcher stopped: {self.failure}") from self.failure
        return paths

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._notify.close()


def _folder_touched(change: Change, path: str) -> bool:
    """A folder "modified": its entries changed, and each of them has an event of its own. Polling
    reports the parent of every new file so; kept, it would make the batch sync the whole folder."""
    from watchfiles import Change

    return change is Change.modified and os.path.isdir(path)


def start_listener(roots: list[str], poll_seconds: float | None, say: Callable[[str], None]) -> Listener:
    """inotify where its watch budget covers the trees; polling where asked or where it does not."""
    if poll_seconds is not None:
        return Listener(roots, True, poll_seconds)
    reason = watching.polling_reason(roots, watching.watch_limit())
    if reason is None:
        try:
            return Listener(roots, False, watching.POLL_SECONDS)
        except OSError as error:  # the budget ran out between the count and the watches
            reason = f"inotify refused the watches ({error}); polling every {watching.POLL_SECONDS:g} s instead"
    say(f"imgsearch: watch: {reason}")
    return Listener(roots, True, watching.POLL_SECONDS)


def check_roots(paths: list[str]) -> list[str]:
    roots = []
    for path in paths:
        if not os.path.isdir(path):
            raise WatchError(f"not a folder: {path}" if os.path.exists(path) else f"no such folder: {path}")
        roots.append(canonical_path(path))
    return roots


def run_batch(root: str, paths: list[str], collection: str) -> dict[str, object]:
    """One `sync-folder` run over the batch's paths, or over the whole root for a very large batch."""
    from flows.sync import sync_folder

    narrowed = watching.collapse(paths)
    if len(narrowed) > watching.WHOLE_TREE_ABOVE or root in narrowed:
        return sync_folder(path=root, collection=collection)
    return sync_folder(path=root, collection=collection, only=narrowed)


def watch(paths: list[str], collection: str, poll_seconds: float | None = None,
          say: Callable[[str], None] | None = None) -> int:
    """Catch up, then index each quiet batch of changes, until interrupted (Ctrl-C, SIGTERM)."""
    from flows.sync import sync_folder
    from tasks import stores
    from tasks.prefect_api import detach_temporary_api

    say = say or _say
    roots = check_roots(paths)
    detach_temporary_api()
    listener = start_listener(roots, poll_seconds, _warn)
    try:
        stores.encoder()  # built once, before the first photo waits for it
        for root in roots:
            started = time.perf_counter()
            figures = sync_folder(path=root, collection=collection)
            _stop_if_signalled()
            say(f"caught up with {root}: {_figures(figures)} in {time.perf_counter() - started:.1f} s")
        how = f"polling every {listener.poll_seconds:g} s" if listener.polling else "inotify events"
        say(f"watching {', '.join(roots)} into {collection} ({how}); Ctrl-C stops")
        _loop(listener, collection, say)
    finally:
        listener.close()
    return 0


def _loop(listener: Listener, collection: str, say: Callable[[str], None]) -> None:
    changes = watching.Changes(listener.roots)
    while True:
        _stop_if_signalled()
        changes.add(listener.drain(wait=0.1 if changes.waiting else 1.0))
        for root, paths in changes.take().items():
            failpoints.reach("watch-batch")
            started = time.perf_counter()
            try:
                figures = run_batch(root, paths, collection)
            except Exception as error:  # noqa: BLE001 - a store or Prefect's API down: the watcher waits it out
                changes.retry_later(paths)
                _warn(f"imgsearch: watch: {len(paths)} changed paths under {root} not indexed, trying again in "
                      f"{watching.RETRY_SECONDS:g} s: {' '.join(str(error).split())}")
                continue
            say(f"{len(paths)} changed under {root}: {_figures(figures)} in {time.perf_counter() - started:.1f} s")


def _stop_if_signalled() -> None:
    """A Ctrl-C or SIGTERM that landed inside a flow run may come back as the run's failure or
    state, not as an interrupt: seen once, a watcher went on after one during its catch-up."""
    from cli import stop_signal

    if stop_signal.received():
        raise KeyboardInterrupt


def _say(line: str) -> None:
    print(line, flush=True)  # under `up`, stdout is a log file: each line as it happens


def _warn(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _figures(figures: dict[str, object]) -> str:
    shown = ("found", "embedded", "reused", "skipped", "failed", "removed")
    return ", ".join(f"{key} {figures[key]}" for key in shown if key in figures)

