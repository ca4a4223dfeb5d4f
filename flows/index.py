"""`index_images`: discover -> plan -> one retryable task per chunk -> summary."""

from __future__ import annotations

import os
import time

from prefect import flow
from prefect.futures import as_completed
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner

from imgsearch.settings import check_collection_name, get_settings
from tasks.indexing import (
    check_encoder, count_pending, discover_images, index_chunk, load_model, plan_index, publish_summary,
)
from tasks.progress import Progress


class IndexRunError(RuntimeError):
    """Some chunks failed after all their retries; the message says which and why."""


def _run_name() -> str:
    parameters = flow_run.parameters
    collection = parameters.get("collection") or get_settings().default_table
    return f"index {os.path.basename(str(parameters['path']).rstrip('/')) or '/'} into {collection}"


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
) -> dict[str, object]:
    """Index every image under `path` into `collection`; return the run's summary."""
    started = time.perf_counter()
    settings = get_settings()
    collection = check_collection_name(collection or settings.default_table)
    discovery = discover_images(path)
    plan = plan_index(discovery, collection, chunk_size or settings.chunk_size)
    progress = Progress(collection, plan.total, done=plan.unchanged)
    if plan.chunks:  # only when there is work: a mismatch or missing weights fail the run once, here
        check_encoder(collection)
        load_model()

    chunk_task = index_chunk.with_options(
        retries=retries,
        retry_delay_seconds=[retry_delay_seconds * 5**attempt for attempt in range(max(retries, 1))],
    )
    futures = [
        chunk_task.submit(chunk, collection, number, len(plan.chunks))
        for number, chunk in enumerate(plan.chunks, start=1)
    ]
    sizes = {future.task_run_id: len(chunk) for future, chunk in zip(futures, plan.chunks)}
    totals = {"embedded": 0, "reused": 0, "unchanged": 0}
    failures: list[tuple[str, str]] = [(p.path, p.reason) for p in discovery.problems]
    broken_chunks: list[str] = []
    builds_by_process: dict[int, int] = {}
    for future in as_completed(futures):
        outcome = future.result(raise_on_failure=False)
        if isinstance(outcome, BaseException):
            broken_chunks.append(f"{sizes[future.task_run_id]} images: {outcome}")
            progress.advance(sizes[future.task_run_id], failed=sizes[future.task_run_id])
            continue
        totals["embedded"] += outcome.indexed
        totals["reused"] += outcome.reused
        totals["unchanged"] += outcome.unchanged
        failures.extend(outcome.failed)
        builds_by_process[outcome.pid] = max(builds_by_process.get(outcome.pid, 0), outcome.model_builds)
        progress.advance(sizes[future.task_run_id], failed=len(outcome.failed))

    seconds = time.perf_counter() - started
    indexed = totals["embedded"] + totals["reused"]
    summary: dict[str, object] = {
        "path": discovery.root,
        "collection": collection,
        "found": plan.total,
        "indexed": indexed,
        "embedded": totals["embedded"],
        "reused": totals["reused"],
        "skipped": plan.unchanged + totals["unchanged"],
        "failed": len(failures),
        "failed_chunks": len(broken_chunks),
        "chunks": len(futures),
        "processes": len(builds_by_process),
        "model_builds": sum(builds_by_process.values()),
        "seconds": round(seconds, 2),
        "images_per_second": round(indexed / seconds, 2) if seconds > 0 else 0.0,
    }
    publish_summary(summary, failures)
    if broken_chunks:
        pending = count_pending(collection, return_state=True)
        left = f"{pending.result()} images are pending in the catalog" if pending.is_completed() else (
            "the catalog could not be read")
        raise IndexRunError(
            f"{len(broken_chunks)} of {len(futures)} chunks failed after {retries} retries; "
            f"{left}; run again to finish them. First: {broken_chunks[0]}"
        )
    summary["failures"] = [{"path": path, "reason": reason} for path, reason in failures]
    return summary
