"""What the app holds for its lifetime: settings, model, batcher, backends, index runs.

The model is built once in the lifespan. Backends are opened on first use and
again after a failure, so the service starts while Milvus or the database is
down, answers 503 meanwhile, and recovers by itself when they return.
"""

from __future__ import annotations

from imgsearch import collection
from imgsearch.catalog import Catalog
from imgsearch.models import AnyEncoder
from imgsearch.settings import Settings
from imgsearch.vectors import VectorStore
from search_app.batching import QueryBatcher
from search_app.resolution_store import Resolutions
from search_app.runs import IndexRuns


class Services:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.encoder: AnyEncoder | None = None
        self.batcher: QueryBatcher | None = None
        self.runs = IndexRuns()
        self.resolutions = Resolutions()

    def catalog(self) -> Catalog:
        return collection.catalog_of(self.settings)

    def vectors(self) -> VectorStore:
        return collection.vectors_of(self.settings)

    def stores(self) -> collection.Stores:
        return collection.Stores.open(self.settings)

