"""`sync_folder` keeps a collection equal to a folder; `reconcile` keeps Milvus equal to the catalog."""

from __future__ import annotations


from prefect import flow
from prefect.artifacts import create_table_artifact
from prefect.futures import wait
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner

from flows.index import index_images, seal_or_warn
from imgsearch.indexing import chunk_size_for
from imgsearch.settings import check_collection_name, get_settings
from tasks.indexing import find_write_limit, index_chunk, load_model
from tasks.naming import artifact_key, run_name
from tasks.sync import find_divergence, remove_gone_files, repair_without_model


def _sync_name() -> str:
    parameters = flow_run.parameters
    collection = parameters.get("collection") or get_settings().default_table
    return run_name("watch" if parameters.get("only") else "sync", str(parameters["path"]), collection,
                    changed=len(parameters.get("only") or ()))


@flow(name="sync-folder", flow_run_name=_sync_name)
def sync_folder(
    path: str, collection: str | None = None, chunk_size: int | None = None,
    retries: int = 3, retry_delay_seconds: float = 2.0, only: list[str] | None = None,
) -> dict[str, object]:
    """Index new and changed files (moved ones reuse their vector), then remove gone ones: under
    `path`, or (a watcher's batch) at or below the changed paths `only` under it."""
    collection = check_collection_name(collection or get_settings().default_table)
    indexed = index_images(path=path, collection=collection, chunk_size=chunk_size, retries=retries,
                           retry_delay_seconds=retry_delay_seconds, only=only)
    figures = {**indexed.figures(), "removed": remove_gone_files(path, collection, only)}
    what = f"{len(only)} changed paths under {path}" if only else path
    create_table_artifact([{"metric": k, "value": v} for k, v in figures.items()],
                          key=artifact_key("sync-summary", collection),
                          description=f"Sync of {what} into {collection}")
    return figures


@flow(name="reconcile", flow_run_name="reconcile {collection}",
      task_runner=ThreadPoolTaskRunner(max_workers=2))
def reconcile(collection: str | None = None) -> dict[str, int]:
    """Find and repair divergence between Milvus and the catalog; report what was fixed."""
    settings = get_settings()
    collection = check_collection_name(collection or settings.default_table)
    divergence = find_divergence(collection)
    repair_without_model(divergence, collection)
    todo = divergence.to_reindex
    if todo:
        write_limited = find_write_limit()
        load_model()
        size = chunk_size_for(len(todo), settings.chunk_size, settings.batch_size, 4)
        chunks = [todo[start : start + size] for start in range(0, len(todo), size)]
        futures = [index_chunk.submit(chunk, collection, n, len(chunks), write_limited)
                   for n, chunk in enumerate(chunks, 1)]
        wait(futures)
        for future in futures:
            future.result()  # a chunk that failed all its retries fails the run, naming why
        seal_or_warn(collection)
    fixed = divergence.as_dict()
    create_table_artifact([{"repair": k, "count": v} for k, v in fixed.items()],
                          key=artifact_key("reconcile", collection),
                          description=f"Divergence repaired in {collection}")
    return fixed
