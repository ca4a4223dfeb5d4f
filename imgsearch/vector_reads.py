"""Reading a whole collection back out of Milvus: slices of the id space, two at a time.

Milvus' query iterator reads about 1,600 rows/s of 2048-d vectors from a 1M-row standalone
(BENCHMARKS.md, "Reading vectors back"): one page at a time, each answered and then turned into
Python float lists before the next is asked for. Here the id space is cut into ranges of at most
`target` rows by counting (a `count(*)` over a range moves no vectors, so halving a range until
it is small enough is cheap whatever the ids are: hashes spread over 53 bits, or 0, 1, 2, ...),
each range is fetched by one query, IN_FLIGHT of them at once, and the vectors arrive as numpy
views (`strict_float32`), not float lists. Rows come in ascending id order, as the iterator's did.

Only the first count waits for the server to have applied every write made before the read began
(the collection's Strong consistency); later queries do not wait again (Eventually): the query
node has applied those writes by then, and a write made during the read may or may not be seen,
as with the iterator.

A slice whose query fails is asked again after a pause, PAUSES times at most: a Milvus 2.3
standalone fails a read of a segment now and then (`PayloadReader ... file to read file`, `read
binlog failed`), while compacting a big load and, less often, with nothing pending at all (28 of
245 slices once at 1M, BENCHMARKS.md), and answers the same query a little later. Counting is
not retried: its failure means that the collection cannot be read at all, and it is said at once.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
import logging
import threading
from typing import Any

log = logging.getLogger(__name__)

ID_LIMIT = (1 << 63) - 1  # the largest int64, never an id: the product's are below 2**53
MAX_LIMIT = 16_384  # the most rows one Milvus query may return
IN_FLIGHT = 2  # slices fetched at once: 2 measured 1.5x one on 2 cores, 4 no better than 2
PAUSES = (2.0, 10.0, 30.0)  # seconds before each new try of a slice whose fetch failed

Rows = list[dict[str, Any]]
Count = Callable[[str, bool], int]  # (filter, first) -> rows; the first waits for earlier writes
Fetch = Callable[[str, int], Rows]  # (filter, limit) -> rows


def id_range(low: int, high: int) -> str:
    return f"id >= {low} and id < {high}"


def id_slices(count: Count, target: int, low: int = 0, high: int = ID_LIMIT,
              rows: int | None = None) -> Iterator[tuple[int, int]]:
    """Ranges [low, high) in ascending order, none empty, each holding at most `target` rows
    (or a single id) when counted."""
    if rows is None:
        rows = count(id_range(low, high), True)
    if rows == 0:
        return
    if rows <= target or high - low == 1:
        yield low, high
        return
    middle = (low + high) // 2
    below = count(id_range(low, middle), False)
    yield from id_slices(count, target, low, middle, below)
    yield from id_slices(count, target, middle, high, max(rows - below, 0))


def fetch_slice(fetch: Fetch, low: int, high: int) -> Rows:
    """The rows of [low, high) by id; a range that grew past one query's limit since it was
    counted is fetched in halves."""
    rows = fetch(id_range(low, high), MAX_LIMIT)
    if len(rows) >= MAX_LIMIT and high - low > 1:
        middle = (low + high) // 2
        return fetch_slice(fetch, low, middle) + fetch_slice(fetch, middle, high)
    return sorted(rows, key=lambda row: int(row["id"]))


def fetch_patiently(fetch: Fetch, low: int, high: int, transient: type[BaseException],
                    stopping: threading.Event) -> Rows:
    """`fetch_slice`, tried again after each of PAUSES when it fails with `transient`; not once
    the reader is `stopping` (its caller stopped early, or was interrupted): a process asked to
    stop must not wait out a pause."""
    for pause in PAUSES:
        try:
            return fetch_slice(fetch, low, high)
        except transient as failure:
            if stopping.is_set():
                raise
            log.warning("reading ids %d..%d failed (%s); trying again in %.0f s", low, high, failure, pause)
            if stopping.wait(pause):
                raise
    return fetch_slice(fetch, low, high)


def read_all(count: Count, fetch: Fetch, target: int,
             transient: type[BaseException] = ConnectionError) -> Iterator[Rows]:
    """Every row, a slice of at most about `target` rows at a time, ascending by id; IN_FLIGHT
    slices are fetched while the caller works on the one before. A fetch failing with
    `transient` is tried again (PAUSES)."""
    target = max(1, min(target, MAX_LIMIT // 2))
    pending: deque[Future[Rows]] = deque()
    stopping = threading.Event()
    with ThreadPoolExecutor(IN_FLIGHT, thread_name_prefix="milvus-read") as pool:
        try:
            for low, high in id_slices(count, target):
                pending.append(pool.submit(fetch_patiently, fetch, low, high, transient, stopping))
                if len(pending) > IN_FLIGHT:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            stopping.set()  # a slice waiting to be tried again gives up at once
            for future in pending:  # a caller that stops early does not wait for the rest
                future.cancel()
