"""The process' encoder and stores, built once from the settings.

In a thread pool they are shared; on a Dask worker each worker process builds
its own on first use, so the model is loaded once per worker, not per task.
"""

from __future__ import annotations

from imgsearch import collection
from imgsearch.catalog import Catalog
from imgsearch import resources
from imgsearch.models import AnyEncoder
from imgsearch.settings import Settings, get_settings
from imgsearch.vectors import VectorStore


def settings() -> Settings:
    return get_settings()


def catalog() -> Catalog:
    return collection.catalog_of(get_settings())


def vector_store() -> VectorStore:
    return collection.vectors_of(get_settings())


def both() -> collection.Stores:
    return collection.Stores.open(get_settings())


def encoder() -> AnyEncoder:
    return resources.encoder_of(get_settings())
