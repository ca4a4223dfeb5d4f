"""Which Milvus index a collection gets, and the smaller one a server collection moves to as it grows.

New collections: FLAT on Milvus Lite, exact (Lite checks every stored row in Python at each
search whatever its index, so an approximate one gains little there); HNSW on a server (M=16,
efConstruction=200, searched with ef = max(64, 2·top_k)): the best recall and latency while a
collection is small. `MILVUS_INDEX` chooses another for new collections, and then nothing
changes it.

HNSW holds about 9 KB an image in a server's memory and twice that while it builds (17 GB at
1,000,000), IVF_SQ8 about 3 KB (vectors kept as bytes, 1,024 lists, nprobe 32), at a recall@10
of 0.99 against exact search (BENCHMARKS.md, "Scale"). So a server collection left to the
default is rebuilt as IVF_SQ8 once it passes GROW_TO_SQ8_AT vectors, by the seal at the end of
the index run that took it there, and the index it got is recorded with the collection
(property `imgsearch.index`), as its encoder is. The rebuild releases the collection: its
searches answer 503 for that time, once in its life.
"""

from __future__ import annotations

INDEX_PROPERTY = "imgsearch.index"  # a collection property: the index it was moved to, and why
GROWN_INDEX = "IVF_SQ8"
GROW_TO_SQ8_AT = 250_000

INDEX_PARAMS: dict[str, dict[str, int]] = {
    "HNSW": {"M": 16, "efConstruction": 200},
    "IVF_FLAT": {"nlist": 128},
    # A server indexes each sealed segment (at most 512 MB: ~60k of these vectors) on its own.
    "IVF_SQ8": {"nlist": 1024},
}


def default_index(is_lite: bool) -> str:
    return "FLAT" if is_lite else "HNSW"


def search_params(index_type: str, top_k: int) -> dict[str, int]:
    if index_type == "HNSW":
        return {"ef": max(64, 2 * top_k)}
    if index_type in ("IVF_FLAT", "IVF_SQ8"):
        return {"nprobe": 32}
    return {}


def grown_index(current: str, count: int, *, is_lite: bool, chosen: bool) -> str | None:
    """The index a collection of `count` vectors with index `current` should move to, or None:
    only a server's default HNSW moves, past GROW_TO_SQ8_AT."""
    if is_lite or chosen or current != default_index(is_lite) or count < GROW_TO_SQ8_AT:
        return None
    return GROWN_INDEX
