"""Search: encode a query image, ask Milvus, join the hits with their catalog records.

Only hits whose record is `indexed` are returned, so a vector a crash left
behind (its row still `pending`) is never shown; Milvus is asked for a few
more than `top_k` so that such hits do not shorten the answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from imgsearch.catalog import INDEXED, Catalog
from imgsearch.decode import decode_image
from imgsearch.models import AnyEncoder
from imgsearch.vectors import VectorStore

SLACK = 8


@dataclass(frozen=True)
class Result:
    id: int
    path: str
    score: float
    labels: list[str] = field(default_factory=list)


def encode_query(encoder: AnyEncoder, data: bytes) -> np.ndarray:
    """One query image's feature vector (raises DecodeError on a bad image)."""
    vector: np.ndarray = encoder.embed(decode_image(data).pixels[np.newaxis])[0]
    return vector


def nearest(
    vector: np.ndarray,
    collection: str,
    top_k: int,
    vectors: VectorStore,
    catalog: Catalog,
    *,
    label: str | None = None,
    exclude: int | None = None,
    encoder: str | None = None,
) -> list[Result]:
    """The `top_k` indexed images nearest to `vector`, best first. `encoder`: the
    encoder that made `vector`; a collection of another encoder's vectors is refused."""
    if encoder is not None:
        vectors.check_encoder(collection, encoder)
    hits = vectors.search(collection, vector[np.newaxis], top_k + SLACK + (exclude is not None), label)[0]
    hits = [hit for hit in hits if hit.id != exclude]
    records = catalog.get(collection, [hit.id for hit in hits])
    results = []
    for hit in hits:
        record = records.get(hit.id)
        if record is None or record.status != INDEXED:
            continue
        results.append(Result(hit.id, record.path, hit.score, list(record.labels or [])))
        if len(results) == top_k:
            break
    return results
