"""The index flow's tasks: discover, plan, index one chunk, summarise."""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager, nullcontext
from uuid import UUID

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE
from prefect.concurrency.sync import concurrency
from prefect.runtime import flow_run

from imgsearch import indexing
from imgsearch.catalog import PENDING
from imgsearch.discover import Discovery, FoundImage, discover, discover_changed
from imgsearch.errors import ImgsearchError
from imgsearch.indexing import ChunkReport, Plan
from imgsearch.summary import FAILURES_SHOWN, IndexSummary
from tasks import stores
from tasks.naming import artifact_key
from tasks.prefect_api import concurrency_limit_active

# A Prefect global concurrency limit, when an operator created one, held around each chunk's
# writes to the stores (not its decoding or model time): how many chunks write at once, across
# all runs, processes and Dask workers sharing one Prefect server. It is never created here:
# Prefect's temporary API does not run the service that frees the slot of a holder killed
# mid-write (its repossessor), and the slot count lives in its database, so a `kill -9` would
# take a slot for good and, after as many kills as slots, every later run would wait forever.
MILVUS_WRITE_LIMIT = "milvus-write"
# A slot's lease, renewed while held: on a Prefect server, a writer killed mid-write frees its
# slot this long after (Prefect's shortest lease) plus the repossessor's sweep (15 s).
WRITE_LEASE_SECONDS = 60
RETRY_DELAYS = [2.0, 10.0, 30.0]

_STOPPED_RUNS: set[str] = set()
_STOPPED_LOCK = threading.Lock()


class RunStopped(ImgsearchError, RuntimeError):
    """A chunk not started because its run was asked to stop; its images stay pending."""


def stop_runs(run_ids: list[str]) -> None:
    """Ask these flow runs of this process to stop (`imgsearch serve` shutting down):
    their chunks not yet started end at once and are not retried."""
    with _STOPPED_LOCK:
        _STOPPED_RUNS.update(run_ids)


def _stopping(run_id: UUID | str | None) -> bool:
    with _STOPPED_LOCK:
        return str(run_id) in _STOPPED_RUNS


@task(name="discover-images", cache_policy=NONE)
def discover_images(path: str, only: list[str] | None = None) -> Discovery:
    found = discover_changed(path, only) if only else discover(path)
    logger = get_run_logger()
    where = f"among {len(only)} changed paths under {found.root}" if only else f"under {found.root}"
    logger.info("found %d images %s (%s)", len(found.images), where,
                "PASCAL VOC tree" if found.voc else "plain folders")
    for problem in found.problems:
        logger.warning("skipped %s: %s", problem.path, problem.reason)
    return found


def _not_a_mismatch(_task: object, _task_run: object, state: object) -> bool:
    """Retry a store that does not answer (yet: a Milvus just restarted); a mismatch stays one."""
    from imgsearch.vectors import EncoderMismatch

    try:
        state.result()  # type: ignore[attr-defined]
    except EncoderMismatch:
        return False
    except Exception:  # noqa: BLE001 - any other failure is worth the retries
        return True
    return True


@task(name="check-encoder", cache_policy=NONE, retries=3, retry_delay_seconds=RETRY_DELAYS,
      retry_condition_fn=_not_a_mismatch)
def check_encoder(collection: str) -> None:
    """Refuse, before any model is built, to add this process' vectors to a collection
    of another encoder's (EncoderMismatch says how to proceed)."""
    from imgsearch.models import name_of

    stores.vector_store().check_encoder(collection, name_of(stores.settings()))


@task(name="load-model", cache_policy=NONE, retries=1)
def load_model() -> None:
    """Build the process' encoder (once per process) before the chunks need it."""
    encoder = stores.encoder()
    get_run_logger().info("ResNet50 ready (%s, batch %d)", encoder.name, encoder.batch_size)


@task(name="find-write-limit", cache_policy=NONE, retries=2, retry_delay_seconds=[2.0, 10.0])
def find_write_limit() -> bool:
    """Whether the run's writes take a slot of `milvus-write`: only if that limit exists and is active."""
    limited = concurrency_limit_active(MILVUS_WRITE_LIMIT)
    if limited:
        get_run_logger().info("writes hold a slot of the concurrency limit %r", MILVUS_WRITE_LIMIT)
    return limited


def _write_slot() -> AbstractContextManager[None]:
    # strict=False: a limit deleted since the run looked is no reason to fail a chunk.
    return concurrency(MILVUS_WRITE_LIMIT, occupy=1, lease_duration=WRITE_LEASE_SECONDS, strict=False)


@task(name="plan-index", cache_policy=NONE, retries=3, retry_delay_seconds=RETRY_DELAYS)
def plan_index(discovery: Discovery, collection: str, chunk_size: int) -> Plan:
    plan = indexing.plan_index(
        discovery, stores.catalog(), stores.vector_store(), collection, chunk_size,
        batch_size=stores.settings().batch_size,
    )
    get_run_logger().info(
        "%d images: %d unchanged, %d to check in %d chunks",
        plan.total, plan.unchanged, plan.total - plan.unchanged, len(plan.chunks),
    )
    return plan


@task(
    name="index-chunk",
    task_run_name="index chunk {number} of {of}",
    cache_policy=NONE,
    retries=3,
    retry_delay_seconds=RETRY_DELAYS,
    retry_jitter_factor=0.5,
    # A stopped run retries nothing: its process is going away.
    retry_condition_fn=lambda _task, task_run, _state: not _stopping(task_run.flow_run_id),
)
def index_chunk(images: list[FoundImage], collection: str, number: int, of: int,
                write_limited: bool = False) -> ChunkReport:
    """Decode, embed and write one chunk; idempotent, so a retry is always safe."""
    if _stopping(flow_run.id):
        raise RunStopped(f"not started: the run was stopped ({len(images)} images stay pending)")
    settings = stores.settings()
    report = indexing.index_chunk(
        images, collection, stores.catalog(), stores.vector_store(), stores.encoder(),
        decode_threads=settings.decode_threads, write_slot=_write_slot if write_limited else nullcontext,
    )
    logger = get_run_logger()
    for path, reason in report.failed:
        logger.warning("failed %s: %s", path, reason)
    logger.info(
        "chunk %d/%d: %d embedded, %d reused, %d unchanged, %d failed in %.1fs",
        number, of, report.indexed, report.reused, report.unchanged, len(report.failed),
        report.seconds,
    )
    return report


@task(name="seal-vectors", cache_policy=NONE, retries=2, retry_delay_seconds=[2.0, 10.0])
def seal_vectors(collection: str) -> None:
    """After a run's writes: Milvus Lite searches what it has not sealed row by row; a server
    collection that has grown past its default index gets the smaller one."""
    rebuilt = stores.vector_store().seal(collection)
    if rebuilt:
        get_run_logger().info("the index of %s was rebuilt as %s", collection, rebuilt)


@task(name="count-pending", cache_policy=NONE, retries=2, retry_delay_seconds=[2.0, 10.0])
def count_pending(collection: str) -> int:
    """Images of the collection that a run found and has not indexed yet."""
    return stores.catalog().count(collection, PENDING)


@task(name="publish-summary", cache_policy=NONE)
def publish_summary(summary: IndexSummary) -> None:
    """The run's table artifact, and a markdown list of failed files with reasons."""
    create_table_artifact(
        [{"metric": name, "value": value} for name, value in summary.figures().items()],
        key=artifact_key("index-summary", summary.collection),
        description=f"Indexing {summary.path} into {summary.collection}",
    )
    if summary.failures:
        lines = ["| file | reason |", "| --- | --- |"] + [
            f"| `{path}` | {reason.replace('|', '/')} |" for path, reason in summary.failures[:FAILURES_SHOWN]
        ]
        if summary.failed > FAILURES_SHOWN:
            lines.append(f"\n…and {summary.failed - FAILURES_SHOWN} more")
        create_markdown_artifact(
            "\n".join(lines), key=artifact_key("index-failures", summary.collection),
            description=f"{summary.failed} files could not be indexed",
        )
