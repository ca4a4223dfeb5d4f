"""What a process builds once and shares: its encoders, Milvus clients and catalogs.

Each is made on first use for its key (a model is slow to build; Milvus Lite lets
one process open a .db at a time; an engine owns a connection pool) and kept until
`release()`, which tests call between backends and the app calls never. The count
of models built is kept here too: chunk reports carry it, so that a run shows one
model per process (per Dask worker), not one per chunk.

The process environment native libraries need is set earlier, when `imgsearch` is
first imported (`runtime.configure`), because numpy reads it at its own import.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

from imgsearch.catalog import Catalog
from imgsearch.decode import INPUT_SIZE
from imgsearch.encoder import Pooling
from imgsearch.models import AnyEncoder, build_encoder
from imgsearch.multiscale import sizes_of
from imgsearch.settings import Precision, Settings
from imgsearch.thumbnails import ThumbnailCache
from imgsearch.vectors import VectorStore
from imgsearch.weights import find_weights

_LOCK = threading.RLock()
_ENCODERS: dict[tuple[str, str, int, str, tuple[int, ...]], AnyEncoder] = {}
_VECTOR_STORES: dict[str, VectorStore] = {}
_CATALOGS: dict[str, Catalog] = {}
_THUMBNAILS: dict[tuple[Path, int], ThumbnailCache] = {}
_MODEL_BUILDS = 0


def encoder(
    weights: Path, pooling: Pooling = "avg", batch_size: int = 32, precision: Precision = "fp32",
    sizes: tuple[int, ...] = (INPUT_SIZE,),
) -> AnyEncoder:
    """The process' ResNet50 for these weights, pooling, precision and input sizes: Keras for
    fp32 and bf16, LiteRT for dynamic and int8 (same `name`, `batch_size` and `embed`)."""
    global _MODEL_BUILDS
    key = (str(weights), pooling, batch_size, precision, sizes)
    with _LOCK:
        if key not in _ENCODERS:
            _ENCODERS[key] = build_encoder(weights, pooling, batch_size, precision, sizes)
            _MODEL_BUILDS += 1
        return _ENCODERS[key]


def encoder_of(settings: Settings) -> AnyEncoder:
    """The process' encoder for what `settings` name: weights, pooling, batch size, precision,
    scales."""
    weights = find_weights(settings.cache_dir, settings.weights)
    return encoder(weights, settings.pooling, settings.batch_size, settings.precision, sizes_of(settings.scales))


def model_builds() -> int:
    """Models this process has built so far."""
    return _MODEL_BUILDS


def vector_store(uri: str, token: str = "", dimension: int = 2048, index_type: str = "") -> VectorStore:
    """One Milvus client per URI per process."""
    with _LOCK:
        if uri not in _VECTOR_STORES:
            _VECTOR_STORES[uri] = VectorStore(uri, token, dimension, index_type)
        return _VECTOR_STORES[uri]


def catalog(url: str) -> Catalog:
    """One engine (and connection pool) per database URL per process."""
    with _LOCK:
        if url not in _CATALOGS:
            _CATALOGS[url] = Catalog(url)
        return _CATALOGS[url]


def thumbnails(root: Path, max_bytes: int) -> ThumbnailCache:
    """One thumbnail cache per folder and bound per process: its size count and lock are
    shared by every request, so a write does not walk the whole folder again."""
    with _LOCK:
        key = (root, max_bytes)
        if key not in _THUMBNAILS:
            _THUMBNAILS[key] = ThumbnailCache(root, max_bytes)
        return _THUMBNAILS[key]


def release_stores() -> None:
    """Close every Milvus client and catalog (tests switch backends; a closed Lite file
    may be opened by another process). The next use opens them again."""
    with _LOCK:
        for store in _VECTOR_STORES.values():
            with contextlib.suppress(Exception):  # closing a dead client must not fail
                store.close()
        _VECTOR_STORES.clear()
        for known in _CATALOGS.values():
            known.close()
        _CATALOGS.clear()
