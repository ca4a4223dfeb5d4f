"""A writer process for the concurrent-writers stress test: two threads, each on
ids of its own, interleave batched upserts and deletes into one collection and
write down the last acknowledged state of every id they touched.

    python -m tests.faults.milvus_writer URI COLLECTION FIRST_ID COUNT SEED OPERATIONS OUT.json
"""

from __future__ import annotations

import json
import random
import sys
import threading

import numpy as np

from imgsearch.vectors import VectorStore

DIMENSION = 2048


def vector(image: int, version: int) -> np.ndarray:
    """A unit vector that says which id and which write it came from."""
    rng = np.random.default_rng(image * 1000 + version)
    values = rng.standard_normal(DIMENSION).astype(np.float32)
    return values / np.linalg.norm(values)


def write(store: VectorStore, collection: str, ids: list[int], seed: int, operations: int,
          acknowledged: dict[int, int | None]) -> None:
    rng = random.Random(seed)
    version = 0
    for _ in range(operations):
        batch = rng.sample(ids, k=min(len(ids), rng.randint(1, 8)))
        version += 1
        if rng.random() < 0.65:
            store.upsert(collection, batch, np.stack([vector(i, version) for i in batch]),
                         [["stress"]] * len(batch), ["stress"] * len(batch))
            acknowledged.update({i: version for i in batch})
        else:
            store.delete(collection, batch)
            acknowledged.update({i: None for i in batch})


def main(argv: list[str]) -> int:
    uri, collection, first, count, seed, operations, out = argv
    store = VectorStore(uri)
    store.ensure_collection(collection)
    ids = list(range(int(first), int(first) + int(count)))
    halves = [ids[: len(ids) // 2], ids[len(ids) // 2:]]
    states: list[dict[int, int | None]] = [{}, {}]
    threads = [threading.Thread(target=write, args=(store, collection, half, int(seed) * 10 + n,
                                                    int(operations), states[n]))
               for n, half in enumerate(halves)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    merged = {**states[0], **states[1]}
    with open(out, "w") as handle:
        json.dump({str(k): v for k, v in merged.items()}, handle)
    return 0 if len(merged) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
