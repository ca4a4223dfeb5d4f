"""Query expansion and database-side augmentation: a vector re-weighted by its neighbours.

Both replace a vector by the L2-normalised sum of itself and its k nearest stored vectors, each
neighbour weighted by its cosine to the vector raised to the power α (negative cosines weigh
nothing): αQE and αDBA of Radenović, Tolias and Chum ("Fine-tuning CNN image retrieval with no
human annotation", 2018). They differ in when:
- αQE, at search time: the query is expanded by its first k answers and searched again (two
  searches a query);
- DBA, at index time: every stored vector is expanded by its k nearest other stored vectors,
  once (a search per image added, and its neighbours' vectors change with it).
`imgsearch eval` measures both (evaluation.py). αQE is offered at search time
(`QUERY_EXPANSION`, off by default: it won on some labelled sets and lost on others, BENCHMARKS.md
"Query expansion"); `searching.nearest_each` applies it with `expand_by_answers`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from imgsearch.topk import top_columns

if TYPE_CHECKING:
    from imgsearch.settings import Settings


@dataclass(frozen=True)
class QueryExpansion:
    """αQE: each query is searched, then searched again as the normalised sum of itself and its
    first `k` answers' vectors, each weighted by its cosine to the query to the power `alpha`."""

    k: int
    alpha: float = 1.0

    @classmethod
    def chosen(cls, k: int | None, settings: Settings) -> QueryExpansion:
        """The k asked for (a request's `expand=`, `--expand`), else `QUERY_EXPANSION`; 0 is off."""
        return cls(settings.query_expansion if k is None else k, settings.query_expansion_alpha)


def nearest(queries: np.ndarray, base: np.ndarray, k: int, leave_out_self: bool = False
            ) -> tuple[np.ndarray, np.ndarray]:
    """Each query's k nearest rows of `base` by inner product, nearest first: (indices, cosines),
    both (len(queries), k). With `leave_out_self`, query i is row i of `base` and is not its own
    neighbour."""
    similarity = queries @ base.T
    if leave_out_self:
        np.fill_diagonal(similarity, -np.inf)
    indices = top_columns(similarity, min(k, base.shape[0] - int(leave_out_self)))
    return indices, np.take_along_axis(similarity, indices, axis=1)


def expanded(vectors: np.ndarray, base: np.ndarray, neighbours: np.ndarray, cosines: np.ndarray,
             alpha: float) -> np.ndarray:
    """Row i of `vectors` plus rows `neighbours[i]` of `base`, each weighted by its cosine**alpha,
    L2-normalised."""
    weights = np.clip(cosines, 0.0, None) ** alpha
    summed = vectors + np.einsum("nk,nkd->nd", weights.astype(np.float32), base[neighbours])
    result: np.ndarray = summed / np.maximum(np.linalg.norm(summed, axis=1, keepdims=True), 1e-12)
    return result.astype(np.float32)


def expand_queries(queries: np.ndarray, base: np.ndarray, k: int, alpha: float,
                   leave_out_self: bool = False) -> np.ndarray:
    """αQE: each query expanded by its k first answers among `base`."""
    neighbours, cosines = nearest(queries, base, k, leave_out_self)
    return expanded(queries, base, neighbours, cosines, alpha)


def augment_database(base: np.ndarray, k: int, alpha: float) -> np.ndarray:
    """DBA: every row of `base` expanded by its k nearest other rows."""
    neighbours, cosines = nearest(base, base, k, leave_out_self=True)
    return expanded(base, base, neighbours, cosines, alpha)


def expand_by_answers(queries: np.ndarray, answers: Sequence[Sequence[tuple[int, float]]],
                      stored: Mapping[int, np.ndarray], alpha: float) -> np.ndarray:
    """αQE with answers a store gave: row i of `queries` plus the vectors `stored` of its
    answers (id, cosine), weighted as `expanded` weighs them. A query with fewer answers (or
    none) is expanded by those it has; an answer whose vector is not stored adds nothing."""
    ids = sorted({image for found in answers for image, _ in found if image in stored})
    position = {image: row for row, image in enumerate(ids)}
    # The last row is zeros: the neighbour of every empty place, so it adds nothing whatever its weight.
    base = np.zeros((len(ids) + 1, queries.shape[1]), dtype=np.float32)
    for image, row in position.items():
        base[row] = stored[image]
    width = max((len(found) for found in answers), default=0)
    neighbours = np.full((len(queries), max(width, 1)), len(ids))
    cosines = np.zeros(neighbours.shape, dtype=np.float32)
    for row, found in enumerate(answers):
        for column, (image, cosine) in enumerate(found):
            if image in position:
                neighbours[row, column], cosines[row, column] = position[image], cosine
    return expanded(queries.astype(np.float32), base, neighbours, cosines, alpha)
