"""Search: encode a query image, ask Milvus, join the hits with their catalog records.

Only hits whose record is `indexed` are returned, so a vector a crash left
behind (its row still `pending`) is never shown; Milvus is asked for a few
more than `top_k` so that such hits do not shorten the answer.

With query expansion (`QUERY_EXPANSION`, `expansion.QueryExpansion`) each query is searched twice:
first for its k nearest indexed images (label filter and exclusions applied, no minimum score),
then as itself plus their vectors; scores are then cosines to that expanded query.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import numpy as np

from imgsearch.catalog import INDEXED, Catalog
from imgsearch.decode import DecodeError, decode_image
from imgsearch.errors import BadInput, NotFound
from imgsearch.expansion import QueryExpansion, expand_by_answers
from imgsearch.models import AnyEncoder
from imgsearch.vectors import VectorStore

SLACK = 8
QUERY_BATCH = 16  # query images encoded together: one request of /api/search, a group of the CLI's
MIN_SCORE_LOW, MIN_SCORE_HIGH = -1.0, 1.0
NEGATIVE_WEIGHT = 0.5  # how far negatives push the query away from them, 0..1
MOST_EXAMPLES = 16  # positive or negative examples of one query


@dataclass(frozen=True)
class Result:
    id: int
    path: str
    score: float
    labels: list[str] = field(default_factory=list)


def encode_query(encoder: AnyEncoder, data: bytes) -> np.ndarray:
    """One query image's feature vector (raises DecodeError on a bad image)."""
    vector: np.ndarray = encode_queries(encoder, [("image", data)])[0]
    return vector


def encode_queries(encoder: AnyEncoder, images: Sequence[tuple[str, bytes]]) -> np.ndarray:
    """The feature vectors of several query images (name, bytes), in one model batch."""
    vectors: np.ndarray = encoder.embed(np.stack(decode_queries(images, encoder.input_size)))
    return vectors


def decode_queries(images: Sequence[tuple[str, bytes]], size: int) -> list[np.ndarray]:
    """Each query image's pixels, as the encoder takes them (`size` x `size`). One that is not an
    image fails them all with its DecodeError, named by its place and name when there are several."""
    pixels = []
    for number, (name, data) in enumerate(images, start=1):
        try:
            pixels.append(decode_image(data, size).pixels)
        except DecodeError as error:
            if len(images) == 1:
                raise
            raise type(error)(f"image {number} ({name[:80]}): {error}") from None
    return pixels


def check_min_score(min_score: float | None) -> float | None:
    """Cosine similarity lies in [-1, 1]: a threshold outside it is a mistake, not a filter."""
    if min_score is not None and not (MIN_SCORE_LOW <= min_score <= MIN_SCORE_HIGH):
        raise BadInput(f"min_score must be from {MIN_SCORE_LOW} to {MIN_SCORE_HIGH} (cosine similarity), "
                       f"got {min_score}")
    return min_score


def nearest_each(
    queries: np.ndarray,
    collection: str,
    top_k: int,
    vectors: VectorStore,
    catalog: Catalog,
    *,
    label: str | None = None,
    exclude: Collection[int] = (),
    encoder: str | None = None,
    min_score: float | None = None,
    expansion: QueryExpansion | None = None,
) -> list[list[Result]]:
    """For each row of `queries`, in their order, the `top_k` indexed images nearest to it,
    best first; only those at least `min_score` similar when it is given (fewer then, never
    padded). One Milvus search and one catalog read answer all of them (two of each with
    `expansion`). `encoder`: the encoder that made the queries; a collection of another
    encoder's vectors is refused."""
    check_min_score(min_score)
    if encoder is not None:
        vectors.check_encoder(collection, encoder)
    excluded = set(exclude)
    if expansion is not None and expansion.k > 0:
        # The first answers are read from the catalog too: an image being deleted, or whose
        # record is not INDEXED, must not pull the query toward itself.
        first = indexed_nearest(queries, collection, expansion.k, vectors, catalog, label, excluded, None)
        answers = [[(result.id, result.score) for result in results] for results in first]
        stored = vectors.vectors(collection, sorted({image for found in answers for image, _ in found}))
        queries = expand_by_answers(queries, answers, stored, expansion.alpha)
    return indexed_nearest(queries, collection, top_k, vectors, catalog, label, excluded, min_score)


def indexed_nearest(queries: np.ndarray, collection: str, top_k: int, vectors: VectorStore, catalog: Catalog,
                    label: str | None, excluded: Collection[int], min_score: float | None) -> list[list[Result]]:
    """One Milvus search for all `queries`, its hits joined with their catalog records."""
    found = vectors.search(collection, queries, top_k + SLACK + len(excluded), label)
    kept = [[hit for hit in hits if hit.id not in excluded and (min_score is None or hit.score >= min_score)]
            for hits in found]
    records = catalog.get(collection, sorted({hit.id for hits in kept for hit in hits}))
    answers = []
    for hits in kept:
        results: list[Result] = []
        for hit in hits:
            record = records.get(hit.id)
            if record is None or record.status != INDEXED:
                continue
            results.append(Result(hit.id, record.path, hit.score, list(record.labels or [])))
            if len(results) == top_k:
                break
        answers.append(results)
    return answers


def like_these(
    positive: Sequence[int],
    negative: Sequence[int],
    collection: str,
    top_k: int,
    vectors: VectorStore,
    catalog: Catalog,
    *,
    negative_weight: float = NEGATIVE_WEIGHT,
    label: str | None = None,
    min_score: float | None = None,
    expansion: QueryExpansion | None = None,
) -> list[Result]:
    """More like the `positive` indexed images, less like the `negative` ones: the query is
    the mean of the positives' vectors minus `negative_weight` times the negatives' mean,
    L2-normalised; the examples themselves are not answered."""
    if not positive:
        raise BadInput("give at least one positive example")
    if not 0.0 <= negative_weight <= 1.0:
        raise BadInput(f"negative_weight must be from 0 to 1, got {negative_weight:g}")
    examples = list(dict.fromkeys([*positive, *negative]))
    records = catalog.get(collection, examples)
    stored = vectors.vectors(collection, examples)
    missing = [i for i in examples if i not in stored or (r := records.get(i)) is None or r.status != INDEXED]
    if missing:
        shown = ", ".join(str(i) for i in missing[:5]) + (" …" if len(missing) > 5 else "")
        raise NotFound(f"no indexed image with id {shown} in {collection!r}")
    query = np.mean([stored[i] for i in positive], axis=0)
    if negative:
        query = query - negative_weight * np.mean([stored[i] for i in negative], axis=0)
    norm = float(np.linalg.norm(query))
    if norm < 1e-6:
        raise BadInput("the positive and negative examples cancel out: no direction is left to search")
    return nearest_each((query / norm)[np.newaxis], collection, top_k, vectors, catalog, label=label,
                        exclude=examples, min_score=min_score, expansion=expansion)[0]
