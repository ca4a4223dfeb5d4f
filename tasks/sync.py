"""Tasks of the sync and reconcile flows."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NONE

from imgsearch import collection as collection_core
from imgsearch import sync
from imgsearch.discover import discover, discover_changed
from imgsearch.sync import Divergence
from tasks import stores
from tasks.indexing import RETRY_DELAYS

GONE_SHOWN = 5  # paths named in the log line of a removal


@task(name="remove-gone-files", cache_policy=NONE, retries=3, retry_delay_seconds=RETRY_DELAYS)
def remove_gone_files(path: str, collection: str, only: list[str] | None = None) -> int:
    """Delete from both stores the images under `path` (or at or below `only`) whose files are gone."""
    both = stores.both()
    gone = sync.gone_records(discover_changed(path, only) if only else discover(path), both.catalog, collection)
    removed = collection_core.delete(both, collection, [record.id for record in gone])
    shown = ", ".join(record.path for record in gone[:GONE_SHOWN]) + (" ..." if len(gone) > GONE_SHOWN else "")
    get_run_logger().info("removed %d images whose files are gone from %s%s", removed, path,
                          f": {shown}" if gone else "")
    return removed


@task(name="find-divergence", cache_policy=NONE, retries=3, retry_delay_seconds=RETRY_DELAYS)
def find_divergence(collection: str) -> Divergence:
    found = sync.find_divergence(stores.catalog(), stores.vector_store(), collection)
    get_run_logger().info("divergence in %s: %s", collection, found.as_dict())
    return found


@task(name="repair-without-model", cache_policy=NONE, retries=3, retry_delay_seconds=RETRY_DELAYS)
def repair_without_model(divergence: Divergence, collection: str) -> None:
    sync.repair_without_model(divergence, stores.catalog(), stores.vector_store(), collection)
