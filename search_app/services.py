"""What the app holds for its lifetime: settings, model, batcher, backends, index runs.

The model is built once in the lifespan. Backends are opened on first use and
again after a failure, so the service starts while Milvus or the database is
down, answers 503 meanwhile, and recovers by itself when they return.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import anyio.to_thread

from imgsearch.catalog import Catalog, get_catalog
from imgsearch.models import AnyEncoder
from imgsearch.settings import Settings
from imgsearch.vectors import VectorStore, get_vector_store
from search_app.batching import QueryBatcher
from search_app.runs import IndexRuns

T = TypeVar("T")


class Services:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.encoder: AnyEncoder | None = None
        self.batcher: QueryBatcher | None = None
        self.runs = IndexRuns(settings)

    def catalog(self) -> Catalog:
        return get_catalog(self.settings.database_url)

    def vectors(self) -> VectorStore:
        current = self.settings
        return get_vector_store(
        current.milvus_uri, current.milvus_token, current.vector_dimension, current.milvus_index
    )


async def blocking(function: Callable[..., T], *args: object) -> T:
    """Run a blocking store call off the event loop."""
    return await anyio.to_thread.run_sync(lambda: function(*args))
