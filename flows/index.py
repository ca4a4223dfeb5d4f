"""`index_images`: discover -> plan -> one retryable task per chunk -> summary."""

from __future__ import annotations

import time

from prefect import flow, get_run_logger
from prefect.futures import as_completed
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner

from imgsearch.errors import ImgsearchError
from imgsearch.settings import check_collection_name, get_settings
from imgsearch.summary import IndexSummary
from tasks.indexing import (
    check_encoder, count_pending, discover_images, find_write_limit, index_chunk, load_model, plan_index,
    publish_summary, seal_vectors,
)
from tasks.naming import run_name
from tasks.progress import Progress


class IndexRunError(ImgsearchError, RuntimeError):
    """Some chunks failed after all their retries; the message says which and why."""


def seal_or_warn(collection: str) -> None:
    """After a run's writes: written vectors are searched fast only once sealed. A seal
    that fails costs speed, not data: the run still reports what it wrote, and the next
    run seals again."""
    sealed = seal_vectors(collection, return_state=True)
    if not sealed.is_completed():
        get_run_logger().warning("vectors of %s not sealed (searches stay slow until the next run): %s",
                                 collection, sealed.message)


def _run_name() -> str:
    parameters = flow_run.parameters
    collection = parameters.get("collection") or get_settings().default_table
    return run_name("index", str(parameters["path"]), collection, changed=len(parameters.get("only") or ()))


@flow(
    name="index-images",
    flow_run_name=_run_name,
    # Two chunks in flight: one in the model while the other is read, decoded
    # or written. More only queue on the encoder's lock.
    task_runner=ThreadPoolTaskRunner(max_workers=2),
    validate_parameters=True,
)
def index_images(
    path: str,
    collection: str | None = None,
    chunk_size: int | None = None,
    retries: int = 3,
    retry_delay_seconds: float = 2.0,
    only: list[str] | None = None,
) -> IndexSummary:
    """Index every image under `path` (or, from a watcher, those among the changed paths `only`
    under it) into `collection`; return the run's summary."""
    started = time.perf_counter()
    settings = get_settings()
    collection = check_collection_name(collection or settings.default_table)
    discovery = discover_images(path, only)
    plan = plan_index(discovery, collection, chunk_size or settings.chunk_size)
    progress = Progress(collection, plan.total, done=plan.unchanged)
    write_limited = False
    # Even with nothing to embed: files "unchanged" under another encoder are not indexed for this one.
    check_encoder(collection)
    if plan.chunks:  # only when there is work: missing weights fail the run once, here
        write_limited = find_write_limit()
        load_model()

    chunk_task = index_chunk.with_options(
        retries=retries,
        retry_delay_seconds=[retry_delay_seconds * 5**attempt for attempt in range(max(retries, 1))],
    )
    futures = [
        chunk_task.submit(chunk, collection, number, len(plan.chunks), write_limited)
        for number, chunk in enumerate(plan.chunks, start=1)
    ]
    sizes = {future.task_run_id: len(chunk) for future, chunk in zip(futures, plan.chunks)}
    summary = IndexSummary.start(discovery.root, collection, plan, [(p.path, p.reason) for p in discovery.problems])
    for future in as_completed(futures):
        outcome = future.result(raise_on_failure=False)
        size = sizes[future.task_run_id]
        if isinstance(outcome, BaseException):
            summary.add_broken(size, outcome)
            progress.advance(size, failed=size)
        else:
            summary.add(outcome)
            progress.advance(size, failed=len(outcome.failed))
    if summary.indexed:
        seal_or_warn(collection)
    summary.seconds = time.perf_counter() - started
    publish_summary(summary)
    if summary.broken_chunks:
        pending = count_pending(collection, return_state=True)
        left = f"{pending.result()} images are pending in the catalog" if pending.is_completed() else (
            "the catalog could not be read")
        raise IndexRunError(
            f"{len(summary.broken_chunks)} of {summary.chunks} chunks failed after {retries} retries; "
            f"{left}; run again to finish them. First: {summary.broken_chunks[0]}"
        )
    return summary
