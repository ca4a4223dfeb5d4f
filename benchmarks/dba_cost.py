"""What database-side augmentation (DBA) would cost an index run in Milvus, had it won (BENCHMARKS.md,
"Query expansion (αQE) and database-side augmentation"): for a chunk of new images, a batched kNN
search of every one, the upsert of the new vectors, and the read and re-upsert of k neighbours each.

    python benchmarks/dba_cost.py ROWS [FOLDER]

Measured with the product's VectorStore on Milvus Lite (FLAT), random unit vectors: Lite's cost
depends on the rows it holds, not on what they are.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from imgsearch.vectors import VectorStore

K, CHUNK, FILL = 5, 256, 2000


def unit(rng: np.random.Generator, count: int) -> np.ndarray:
    vectors = rng.normal(size=(count, 2048)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def measure(rows: int, folder: Path) -> str:
    rng = np.random.default_rng(0)
    store = VectorStore(str(folder / f"dba{rows}.db"))
    store.ensure_collection("c", "resnet50/gem/dynamic")
    for start in range(0, rows, FILL):
        count = min(FILL, rows - start)
        store.upsert("c", list(range(start, start + count)), unit(rng, count), [[]] * count, ["f"] * count)
    store.seal("c")
    new = unit(rng, CHUNK)
    store.search("c", new[:4], K + 1)  # warm
    started = time.perf_counter()
    found = store.search("c", new, K + 1)
    searched = time.perf_counter() - started
    started = time.perf_counter()
    store.upsert("c", list(range(rows, rows + CHUNK)), new, [[]] * CHUNK, ["f"] * CHUNK)
    written = time.perf_counter() - started
    neighbours = sorted({hit.id for hits in found for hit in hits})[: CHUNK * K]
    started = time.perf_counter()
    stored = store.vectors("c", neighbours)
    read = time.perf_counter() - started
    started = time.perf_counter()
    store.upsert("c", neighbours, np.stack([stored[i] for i in neighbours]), [[]] * len(neighbours),
                 ["f"] * len(neighbours))
    refreshed = time.perf_counter() - started
    store.close()
    per = 1000 / CHUNK
    return (f"rows {rows:,}: per image of a {CHUNK}-image chunk, kNN search {per * searched:.1f} ms, own upsert "
            f"{per * written:.2f} ms, read {K} neighbours {per * read:.2f} ms, re-upsert them {per * refreshed:.2f} ms")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="dba-cost-") as scratch:
        print(measure(int(sys.argv[1]), Path(sys.argv[2]) if len(sys.argv) > 2 else Path(scratch)))
