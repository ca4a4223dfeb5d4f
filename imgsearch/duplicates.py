"""Duplicate groups of a collection: the indexed images whose features are at least
`min_score` similar, linked transitively (an exact copy, a resized, recompressed or
lightly cropped one). Built on the stores, with no second index: every vector is read
back from Milvus once and compared block by block by matrix products, the upper
triangle only (20,000 images: about 4·10¹¹ multiply-adds).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from imgsearch.catalog import INDEXED, Catalog, ImageRecord
from imgsearch.errors import BadInput, NotFound
from imgsearch.vectors import VectorStore

# Chosen by measurement (BENCHMARKS.md, "Duplicate groups", and again for GeM in "Pooling"): the
# lowest threshold at which 1 in 40 pairs of two views of one scene sharing a fifth of it link.
# With GeM (dynamic) every resized and recompressed copy and 17 of 20 10%-crops link at 0.93.
DEFAULT_MIN_SCORE = 0.93
# Below this, most images of a kind link together: the answer is one group, and the pairs
# found grow with the square of the collection.
LOWEST_MIN_SCORE = 0.5
BLOCK = 1024  # rows compared at once: a 1024 × n float32 product (80 MB at 20,000)
MAX_PAIRS = 2_000_000


@dataclass(frozen=True)
class DuplicateImage:
    id: int
    path: str
    score: float  # similarity to the group's first image
    width: int | None
    height: int | None
    size: int | None


@dataclass(frozen=True)
class DuplicateGroup:
    """Images of one group, the one to keep first (the most pixels, then the most bytes), then
    the others by their similarity to it."""

    images: list[DuplicateImage]

    @property
    def score(self) -> float:
        """The lowest similarity of an image to the first one."""
        return min(image.score for image in self.images[1:])

    def as_dict(self) -> dict[str, Any]:
        return {"size": len(self.images), "score": round(self.score, 6),
                "images": [{**asdict(image), "score": round(image.score, 6)} for image in self.images]}


def check_min_score(min_score: float) -> float:
    if not LOWEST_MIN_SCORE <= min_score <= 1.0:
        raise BadInput(f"min_score for duplicates must be from {LOWEST_MIN_SCORE} to 1 (cosine similarity), "
                       f"got {min_score:g}; {DEFAULT_MIN_SCORE} groups copies, not similar photos")
    return min_score


def duplicate_groups(collection: str, vectors: VectorStore, catalog: Catalog,
                     min_score: float = DEFAULT_MIN_SCORE) -> list[DuplicateGroup]:
    """Every group of at least two indexed images linked by similarity >= `min_score`,
    the largest groups first, then the closest."""
    check_min_score(min_score)
    if not vectors.has_collection(collection) and catalog.count(collection, None) == 0:
        raise NotFound(f"no collection named {collection!r}")
    ids, matrix, records = _indexed_vectors(collection, vectors, catalog)
    pairs = _similar_pairs(matrix, min_score)
    groups = [_group(members, ids, matrix, records) for members in _components(pairs)]
    return sorted(groups, key=lambda group: (-len(group.images), -group.score, group.images[0].path))


def _indexed_vectors(
    collection: str, vectors: VectorStore, catalog: Catalog
) -> tuple[list[int], np.ndarray, dict[int, ImageRecord]]:
    """The ids, vectors and records of indexed images only (one a crash left without its
    record is not an image), each record read once: 20,000 of them are a few MB."""
    ids: list[int] = []
    parts: list[np.ndarray] = []
    indexed: dict[int, ImageRecord] = {}
    for batch_ids, batch in vectors.iter_vectors(collection):
        records = catalog.get(collection, batch_ids)
        keep = [n for n, image in enumerate(batch_ids) if (r := records.get(image)) is not None and r.status == INDEXED]
        ids += [batch_ids[n] for n in keep]
        indexed.update((batch_ids[n], records[batch_ids[n]]) for n in keep)
        parts.append(batch[keep])
    matrix = np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)
    return ids, matrix, indexed


def _similar_pairs(matrix: np.ndarray, min_score: float) -> list[tuple[int, int]]:
    """(i, j) with i < j and matrix[i] · matrix[j] >= min_score."""
    pairs: list[tuple[int, int]] = []
    for start in range(0, len(matrix), BLOCK):
        block = matrix[start : start + BLOCK] @ matrix[start:].T  # row r is image start + r
        rows, columns = np.nonzero(np.triu(block >= min_score, k=1))
        pairs += zip((rows + start).tolist(), (columns + start).tolist(), strict=True)
        if len(pairs) > MAX_PAIRS:
            raise BadInput(f"more than {MAX_PAIRS:,} similar pairs at min_score {min_score:g}: "
                           "raise it to find copies rather than similar photos")
    return pairs


def _components(pairs: Iterable[tuple[int, int]]) -> list[list[int]]:
    """Connected components of the pairs (union-find with path halving)."""
    parent: dict[int, int] = {}

    def root(node: int) -> int:
        parent.setdefault(node, node)
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for a, b in pairs:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    members: dict[int, list[int]] = {}
    for node in parent:
        members.setdefault(root(node), []).append(node)
    return list(members.values())


def _group(members: list[int], ids: list[int], matrix: np.ndarray,
           records: dict[int, ImageRecord]) -> DuplicateGroup:
    def keep_first(index: int) -> tuple[int, int, str]:
        record = records[ids[index]]
        return (-(record.width or 0) * (record.height or 0), -(record.size or 0), record.path)

    keeper = min(members, key=keep_first)
    # float32 rounding puts an exact copy at 1.0000002: a cosine is shown within [-1, 1].
    similarity = np.clip(matrix[members] @ matrix[keeper], -1.0, 1.0)
    scores = dict(zip(members, similarity.tolist(), strict=True))
    ordered = [keeper] + sorted((m for m in members if m != keeper), key=lambda m: (-scores[m], keep_first(m)))
    images = []
    for index in ordered:
        score = scores[index]
        record = records[ids[index]]
        images.append(DuplicateImage(record.id, record.path, float(score), record.width, record.height, record.size))
    return DuplicateGroup(images)
