"""Named points where a test may make this process die, to prove crash safety.

`IMGSEARCH_FAILPOINT=NAME@N` kills the process with SIGKILL (no cleanup, no
flush: a power cut or the OOM killer) the N-th time it reaches the point NAME
(N defaults to 1); `NAME@N:SIGINT` or `:SIGTERM` sends that signal instead (a
Ctrl-C, a `kill`, at exactly that point). Unset, as in production, a point costs
one dict lookup. The points: `between-stores` - a chunk's vectors are in Milvus,
its catalog rows still say `pending`; `export-batch` - an export wrote a batch,
its files are not complete; `watch-batch` - a watcher took a batch of changes, its run has not begun;
`duplicates-read` - duplicates wrote a slice of vectors to its temporary file, more are being read.
"""

from __future__ import annotations

import os
import signal
import threading

_counts: dict[str, int] = {}
_lock = threading.Lock()


def reach(name: str) -> None:
    wanted = os.environ.get("IMGSEARCH_FAILPOINT")
    if not wanted:
        return
    point, _, when = wanted.partition("@")
    if point != name:
        return
    nth, _, sent = when.partition(":")
    with _lock:
        _counts[name] = _counts.get(name, 0) + 1
        if _counts[name] >= int(nth or 1):
            os.kill(os.getpid(), signal.Signals[sent or "SIGKILL"])
