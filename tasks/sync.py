"""Tasks of the sync and reconcile flows."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NONE

from imgsearch import collection as collection_core
from imgsearch import sync
from imgsearch.discover import discover
from imgsearch.sync import Divergence
from tasks import stores
from tasks.indexing import RETRY_DELAYS


@task(name="remove-gone-files", cache_policy=NONE, retries=3, retry_delay_seconds=RETRY_DELAYS)
def remove_gone_files(path: str, collection: str) -> int:
    """Delete from both stores the images under `path` whose files are gone."""
    both = stores.both()
    gone = sync.gone_ids(discover(path), both.catalog, collection)
    removed = collection_core.delete(both, collection, gone)
    get_run_logger().info("removed %d images whose files are gone from %s", removed, path)
    return removed


@task(name="find-divergence", cache_policy=NONE, retries=3, retry_delay_seconds=RETRY_DELAYS)
def find_divergence(collection: str) -> Divergence:
    found = sync.find_divergence(stores.catalog(), stores.vector_store(), collection)
    get_run_logger().info("divergence in %s: %s", collection, found.as_dict())
    return found


@task(name="repair-without-model", cache_policy=NONE, retries=3, retry_delay_seconds=RETRY_DELAYS)
def repair_without_model(divergence: Divergence, collection: str) -> None:
    sync.repair_without_model(divergence, stores.catalog(), stores.vector_store(), collection)
