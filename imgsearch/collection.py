"""A collection across both stores: the one place that opens them from the settings,
counts a collection, deletes images from it and drops it (their thumbnails with them).
The CLI, the flows' tasks, the JSON API and the seed's routes all call these."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from imgsearch import resources
from imgsearch.catalog import FAILED, INDEXED, PENDING, Catalog
from imgsearch.errors import NotFound
from imgsearch.indexing import delete_images
from imgsearch.settings import Settings
from imgsearch.thumbnails import ThumbnailCache
from imgsearch.vectors import VectorStore


@dataclass(frozen=True)
class Stores:
    """The catalog (records) and the vector store of one deployment, opened from its settings."""

    catalog: Catalog
    vectors: VectorStore
    thumbnails: ThumbnailCache

    @classmethod
    def open(cls, settings: Settings) -> Stores:
        """Both stores, each shared by the process for the same address (built once, reopened
        after a failure by the store itself), and the thumbnail cache made from them."""
        return cls(catalog_of(settings), vectors_of(settings), thumbnails_of(settings))


def thumbnails_of(settings: Settings) -> ThumbnailCache:
    return resources.thumbnails(settings.thumbnail_dir, int(settings.thumbnail_cache_mb * 1024 * 1024))


def catalog_of(settings: Settings) -> Catalog:
    return resources.catalog(settings.database_url)


def vectors_of(settings: Settings) -> VectorStore:
    return resources.vector_store(
        settings.milvus_uri, settings.milvus_token, settings.vector_dimension, settings.milvus_index
    )


# The size past which Milvus Lite answers a search in more than 60 ms on the bench's 2-core machine
# (BENCHMARKS.md, "Scale"): Lite checks every stored row in Python at each search, whatever its index.
LITE_SEARCH_LIMIT = 15_000


def past_lite_limit(stores: Stores, only: str | None = None) -> list[str]:
    """One warning line for each collection (or `only` that one) past LITE_SEARCH_LIMIT on Milvus
    Lite (a file, or a `milvus-lite server`), naming the command that moves it to a Milvus server;
    none elsewhere. The sizes are the catalog's, so Milvus is not asked."""
    if not stores.vectors.is_lite:
        return []
    return [f"imgsearch: warning: collection {name!r} holds {size:,} images, past the {LITE_SEARCH_LIMIT:,} at which "
            f"Milvus Lite's search passes 60 ms; move it to a Milvus server: imgsearch migrate --collection {name} "
            f"--to http://HOST:19530 (README, Scaling out)"
            for name, size in stores.catalog.collections().items()
            if size > LITE_SEARCH_LIMIT and only in (None, name)]


@dataclass(frozen=True)
class CollectionCounts:
    collection: str
    indexed: int = 0
    vectors: int = 0
    failed: int = 0
    pending: int = 0

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def counts(stores: Stores, name: str) -> CollectionCounts | None:
    """Records by status and vectors (one query to each store); None for a collection
    that neither store holds."""
    statuses = stores.catalog.status_counts(name)
    vectors = stores.vectors.count_if_exists(name)
    if vectors is None and not statuses:
        return None
    return CollectionCounts(name, statuses.get(INDEXED, 0), vectors or 0, statuses.get(FAILED, 0),
                            statuses.get(PENDING, 0))


def exists(stores: Stores, name: str) -> bool:
    """A collection exists while either store holds anything of it."""
    return stores.vectors.has_collection(name) or stores.catalog.count(name, None) > 0


def drop(stores: Stores, name: str, *, missing_ok: bool = False) -> None:
    """Drop a collection from both stores: vectors first, so that a failure between the
    two leaves records that `index` or `reconcile` can repair, never orphan vectors.
    Raises NotFound for a collection neither store holds, unless `missing_ok`."""
    if not missing_ok and not exists(stores, name):
        raise NotFound(f"no collection named {name!r}")
    stores.vectors.drop(name)
    stores.catalog.drop(name)
    stores.thumbnails.purge_collection(name)


def delete(stores: Stores, name: str, image_ids: list[int]) -> int:
    """Delete images from both stores (crash-safe, see `delete_images`) and their thumbnails."""
    removed = delete_images(name, image_ids, stores.catalog, stores.vectors)
    stores.thumbnails.purge_images(name, image_ids)
    return removed
