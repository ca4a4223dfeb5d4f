"""Duplicate groups of a collection: the indexed images whose features are at least
`min_score` similar, linked transitively (an exact copy, a resized, recompressed or
lightly cropped one). Built on the stores, with no second index: every vector is read
back from Milvus once into a temporary file (the system's temporary folder, TMPDIR:
8 KB an image), and `near_pairs` finds the similar pairs in it, every one up to 20,000
images, by partitions beyond. Memory holds the ids and one partition's scores, not the
vectors; records are read only for the images in a group.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from imgsearch import failpoints
from imgsearch.catalog import INDEXED, Catalog, ImageRecord
from imgsearch.errors import BadInput, NotFound
from imgsearch.near_pairs import EXACT_UP_TO, TooManyPairs, similar_pairs
from imgsearch.progress import Progress, quiet
from imgsearch.vectors import VectorStore

# Chosen by measurement (BENCHMARKS.md, "Duplicate groups", and again for GeM in "Pooling"): the
# lowest threshold at which 1 in 40 pairs of two views of one scene sharing a fifth of it link.
# With GeM (dynamic) every resized and recompressed copy and 17 of 20 10%-crops link at 0.93.
DEFAULT_MIN_SCORE = 0.93
# Below this, most images of a kind link together: the answer is one group, and the pairs
# found grow with the square of the collection.
LOWEST_MIN_SCORE = 0.5
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
                     min_score: float = DEFAULT_MIN_SCORE, progress: Progress = quiet,
                     exact_up_to: int = EXACT_UP_TO) -> list[DuplicateGroup]:
    """Every group of at least two indexed images linked by similarity >= `min_score`,
    the largest groups first, then the closest. `progress(stage, done, total)` is told as
    the vectors are read and compared."""
    check_min_score(min_score)
    if not vectors.has_collection(collection) and catalog.count(collection, None) == 0:
        raise NotFound(f"no collection named {collection!r}")
    with tempfile.TemporaryDirectory(prefix="imgsearch-duplicates-") as folder:
        ids, matrix = _indexed_vectors(collection, vectors, catalog, Path(folder) / "vectors.f32", progress)
        try:
            pairs = similar_pairs(matrix, min_score, MAX_PAIRS, progress, exact_up_to)
        except TooManyPairs:
            raise BadInput(f"more than {MAX_PAIRS:,} similar pairs at min_score {min_score:g}: "
                           "raise it to find copies rather than similar photos") from None
        components = _components(pairs)
        records = catalog.get(collection, [ids[member] for members in components for member in members])
        # An image deleted since its vector was read has no record left: it is no longer in a group.
        components = [kept for members in components if len(kept := [m for m in members if ids[m] in records]) > 1]
        groups = [_group(members, ids, matrix, records) for members in components]
        del matrix  # the file's mapping, before its folder goes
    return sorted(groups, key=lambda group: (-len(group.images), -group.score, group.images[0].path))


def _indexed_vectors(collection: str, vectors: VectorStore, catalog: Catalog, path: Path,
                     progress: Progress) -> tuple[list[int], np.ndarray]:
    """The ids and vectors of indexed images only (one a crash left without its record is not
    an image), the vectors written to `path` as they come and mapped back from it."""
    indexed = set(catalog.ids_with_status(collection, [INDEXED]))
    ids: list[int] = []
    dimension = vectors.dimension
    with open(path, "wb") as out:
        for batch_ids, batch in vectors.iter_vectors(collection):
            keep = [n for n, image in enumerate(batch_ids) if image in indexed]
            ids += [batch_ids[n] for n in keep]
            out.write(np.ascontiguousarray(batch[keep], dtype=np.float32).tobytes())
            dimension = batch.shape[1]
            failpoints.reach("duplicates-read")
            progress("reading vectors", len(ids), len(indexed))
    if not ids:
        return ids, np.zeros((0, dimension), dtype=np.float32)
    return ids, np.memmap(path, dtype=np.float32, mode="r", shape=(len(ids), dimension))


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
