"""The process' encoder and stores, built once from the settings.

In a thread pool they are shared; on a Dask worker each worker process builds
its own on first use, so the model is loaded once per worker, not per task.
"""

from __future__ import annotations

from imgsearch.catalog import Catalog, get_catalog
from imgsearch.models import AnyEncoder, get_encoder
from imgsearch.settings import Settings, get_settings
from imgsearch.vectors import VectorStore, get_vector_store
from imgsearch.weights import find_weights


def settings() -> Settings:
    return get_settings()


def catalog() -> Catalog:
    return get_catalog(get_settings().database_url)


def vector_store() -> VectorStore:
    current = get_settings()
    return get_vector_store(
        current.milvus_uri, current.milvus_token, current.vector_dimension, current.milvus_index
    )


def encoder() -> AnyEncoder:
    current = get_settings()
    weights = find_weights(current.cache_dir, current.weights)
    return get_encoder(weights, current.pooling, current.batch_size, current.precision)
