"""Pairs of unit vectors at least `min_score` similar (cosine), among many.

Up to EXACT_UP_TO rows every pair is compared, block by block by matrix products (18 s for
20,000 on 2 cores). That is quadratic: about 12 hours at 1,000,000. Beyond, the rows are
partitioned as an inverted-file (IVF) index partitions them. Spherical k-means learns 2·√n
centroids on a sample; each row lives in the list of its nearest centroid (its home) and is
compared with the rows living in its PROBES nearest lists, as an IVF search with nprobe = PROBES
would be. Two rows at cosine >= 0.93 are nearly the same point, so one lives in a list the other
probes unless both sit right on a border between centroids. Measured against the exact method on
20,000 vectors with weak clusters (the hard case: many borders), pairs from 0.90 to 0.995 similar:
probing 3 lists found 98.9-99.7%, 4 found all (tests/test_near_pairs.py). The cost grows as n^1.5,
not n²: n·2√n·d multiply-adds to assign, plus, per list, (rows probing it) × (rows living in it)
× d to compare. An earlier form put each row in all 4 of its lists and compared every list with
itself: it found the same pairs (99.8% as many on the scale bench's 300,000, where k-means' lists
are very uneven) at twice the cost (1M: 489 s of comparing on 2 cores).

The rows may be a `numpy.memmap`: a list's rows are read when it is compared, and at most
BLOCK × (a list's size) scores are held at once.
"""
from __future__ import annotations

import numpy as np

from imgsearch.errors import BadInput
from imgsearch.progress import Progress, quiet
from imgsearch.topk import top_columns

EXACT_UP_TO = 20_000
PROBES = 4  # lists each row is compared with, its own included (the module's docstring says why)
BLOCK = 1024  # rows compared at once against the rest of their list (or of all rows)
SAMPLE_PER_LIST = 40  # k-means learns from this many rows per centroid (at most all rows)
ITERATIONS = 8
ASSIGN_BLOCK = 8192




class TooManyPairs(BadInput):
    """More than `limit` pairs: the threshold finds similar photos, not copies."""

    def __init__(self, found: int) -> None:
        super().__init__(f"more than {found - 1:,} similar pairs: raise the threshold to find copies")


def similar_pairs(rows: np.ndarray, min_score: float, limit: int, progress: Progress = quiet,
                  exact_up_to: int = EXACT_UP_TO, seed: int = 0) -> list[tuple[int, int]]:
    """(i, j) with i < j and rows[i] · rows[j] >= min_score: every such pair up to `exact_up_to`
    rows, nearly every one beyond (see the module's docstring)."""
    if len(rows) <= exact_up_to:
        return _exact(rows, min_score, limit, progress)
    return _partitioned(rows, min_score, limit, progress, np.random.default_rng(seed))


def _exact(rows: np.ndarray, min_score: float, limit: int, progress: Progress) -> list[tuple[int, int]]:
    found = _within(np.asarray(rows, dtype=np.float32), np.arange(len(rows)), min_score, limit, progress)
    return sorted(found)


def _within(block_rows: np.ndarray, numbers: np.ndarray, min_score: float, limit: int,
            progress: Progress | None = None, found: set[tuple[int, int]] | None = None) -> set[tuple[int, int]]:
    """Pairs among `block_rows` (row k is row numbers[k] of all), the upper triangle only, BLOCK rows
    at a time; added to `found`."""
    found = set() if found is None else found
    for start in range(0, len(block_rows), BLOCK):
        scores = block_rows[start : start + BLOCK] @ block_rows[start:].T  # row r is start + r
        first, second = np.nonzero(np.triu(scores >= min_score, k=1))
        found.update(zip(numbers[first + start].tolist(), numbers[second + start].tolist(), strict=True))
        if len(found) > limit:
            raise TooManyPairs(len(found))
        if progress is not None:
            progress("comparing", min(start + BLOCK, len(block_rows)), len(block_rows))
    return found


def _partitioned(rows: np.ndarray, min_score: float, limit: int, progress: Progress,
                 rng: np.random.Generator) -> list[tuple[int, int]]:
    count = len(rows)
    centroids = learn_centroids(rows, lists=int(2 * np.sqrt(count)), rng=rng, progress=progress)
    nearest = assign(rows, centroids, PROBES, progress)  # (count, PROBES) list numbers, nearest first
    living = _by_list(nearest[:, 0], np.arange(count), len(centroids))
    visiting = _by_list(nearest[:, 1:].ravel(), np.repeat(np.arange(count), nearest.shape[1] - 1), len(centroids))
    found: set[tuple[int, int]] = set()
    for number in range(len(centroids)):
        home = living[number]
        if len(home):
            home_rows = np.asarray(rows[home], dtype=np.float32)
            _within(home_rows, home, min_score, limit, found=found)
            _across(rows, visiting[number], home_rows, home, min_score, limit, found)
        progress("comparing", number + 1, len(centroids))
    return sorted(found)


def _by_list(lists: np.ndarray, row_numbers: np.ndarray, count: int) -> list[np.ndarray]:
    """For each list number, the row numbers given it, ascending."""
    order = np.argsort(lists, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(lists, minlength=count))])
    return [np.sort(row_numbers[order[bounds[n] : bounds[n + 1]]]) for n in range(count)]


def _across(rows: np.ndarray, visitors: np.ndarray, home_rows: np.ndarray, home: np.ndarray,
            min_score: float, limit: int, found: set[tuple[int, int]]) -> None:
    """Pairs of a visitor (a row probing this list from elsewhere) and a row living in it, BLOCK
    visitors at a time; added to `found` as (smaller, larger) row number."""
    for start in range(0, len(visitors), BLOCK):
        block = visitors[start : start + BLOCK]
        first, second = np.nonzero(np.asarray(rows[block], dtype=np.float32) @ home_rows.T >= min_score)
        a, b = block[first], home[second]
        found.update(zip(np.minimum(a, b).tolist(), np.maximum(a, b).tolist(), strict=True))
        if len(found) > limit:
            raise TooManyPairs(len(found))


def learn_centroids(rows: np.ndarray, lists: int, rng: np.random.Generator,
                    progress: Progress = quiet) -> np.ndarray:
    """Spherical k-means (unit centroids, assignment by inner product) on a sample of the rows."""
    lists = max(1, min(lists, len(rows)))
    chosen = np.sort(rng.choice(len(rows), size=min(len(rows), SAMPLE_PER_LIST * lists), replace=False))
    sample = np.asarray(rows[chosen], dtype=np.float32)
    centroids = sample[rng.choice(len(sample), size=lists, replace=False)].copy()
    for iteration in range(ITERATIONS):
        labels = np.concatenate([np.argmax(sample[start : start + ASSIGN_BLOCK] @ centroids.T, axis=1)
                                 for start in range(0, len(sample), ASSIGN_BLOCK)])
        sums = np.zeros_like(centroids)
        for start in range(0, len(sample), ASSIGN_BLOCK):  # each list's rows summed by a one-hot product
            part = labels[start : start + ASSIGN_BLOCK]
            one_hot = np.zeros((lists, len(part)), dtype=np.float32)
            one_hot[part, np.arange(len(part))] = 1.0
            sums += one_hot @ sample[start : start + ASSIGN_BLOCK]
        empty = np.bincount(labels, minlength=lists) == 0
        sums[empty] = sample[rng.choice(len(sample), size=int(empty.sum()))]  # restart empty lists
        centroids = sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
        progress("learning lists", iteration + 1, ITERATIONS)
    return centroids.astype(np.float32)


def assign(rows: np.ndarray, centroids: np.ndarray, probes: int, progress: Progress = quiet) -> np.ndarray:
    """Each row's `probes` nearest centroids by inner product, the nearest first, ASSIGN_BLOCK rows
    at a time."""
    probes = min(probes, len(centroids))
    nearest = np.empty((len(rows), probes), dtype=np.int64)
    for start in range(0, len(rows), ASSIGN_BLOCK):
        scores = np.asarray(rows[start : start + ASSIGN_BLOCK], dtype=np.float32) @ centroids.T
        nearest[start : start + len(scores)] = top_columns(scores, probes)
        progress("partitioning", min(start + ASSIGN_BLOCK, len(rows)), len(rows))
    return nearest
