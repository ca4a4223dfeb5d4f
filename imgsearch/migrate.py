"""Move a collection to another Milvus (Lite file to server, or back) and its records to another
catalog (SQLite to MySQL, or back), without re-embedding a single image.

Streaming: vectors go over with their labels and folder, read in slices of the id space
(`vector_reads`) and written in batches; records go over in batches of the catalog's primary key. Resumable: ids the target
already holds are skipped, and records are upserted (an interrupted run is simply run again).
The target collection is created with the source's encoder record, so a target that holds
other vectors is refused (EncoderMismatch), and index type is the target's own choice
(MILVUS_INDEX, or its default). The source is only read: it is left as it was.

Verified at the end: the vector count (and record count) of the target equals the source's,
and a sample of stored vectors searched in both answers with the same neighbours (agreement of
the top 10; each finds itself first in the target).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np

from imgsearch import failpoints
from imgsearch.catalog import Catalog
from imgsearch.errors import BadInput, Conflict, NotFound
from imgsearch.progress import Progress, quiet
from imgsearch.vectors import VectorStore

SAMPLE = 20  # stored vectors searched in both, to compare the answers



@dataclass(frozen=True)
class Migration:
    collection: str
    vectors_copied: int = 0  # written to the target by this run
    vectors_present: int = 0  # found there already (an earlier, interrupted run)
    records_copied: int = 0
    vectors: int = 0  # the target's count, equal to the source's
    records: int | None = None  # the target catalog's count, where records moved
    top10_agreement: float | None = None  # mean share of the sample's top 10 that both answer
    finds_itself: float | None = None  # share of the sample whose first answer is itself
    seconds: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def migrate_collection(collection: str, source_vectors: VectorStore, source_catalog: Catalog,
                       target_vectors: VectorStore | None = None, target_catalog: Catalog | None = None,
                       batch: int = 1000, progress: Progress = quiet) -> Migration:
    """Copy `collection`'s vectors to `target_vectors` and/or its records to `target_catalog`."""
    if target_vectors is None and target_catalog is None:
        raise BadInput("nothing to move: name a Milvus (--to) or a catalog (--catalog-to), or both")
    if target_vectors is not None and target_vectors.uri == source_vectors.uri:
        raise BadInput(f"the target Milvus is the source ({source_vectors.uri})")
    if target_catalog is not None and target_catalog.url == source_catalog.url:
        raise BadInput(f"the target catalog is the source ({source_catalog.where})")
    if not source_vectors.has_collection(collection) and source_catalog.count(collection, None) == 0:
        raise NotFound(f"no collection named {collection!r}")
    started = time.perf_counter()
    copied = present = records = 0
    if target_vectors is not None:
        copied, present = _copy_vectors(collection, source_vectors, target_vectors, batch, progress)
    if target_catalog is not None:
        records = _copy_records(collection, source_catalog, target_catalog, batch, progress)
    result = Migration(collection, copied, present, records)
    if target_vectors is not None:
        result = _verify_vectors(result, source_vectors, target_vectors)
    if target_catalog is not None:
        result = _verify_records(result, source_catalog, target_catalog)
    return Migration(**{**asdict(result), "seconds": time.perf_counter() - started})


def _copy_vectors(collection: str, source: VectorStore, target: VectorStore, batch: int,
                  progress: Progress) -> tuple[int, int]:
    total = source.count(collection)
    target.ensure_collection(collection, source.recorded_encoder(collection))
    copied = present = 0
    for slice_ids, slice_vectors, slice_labels, slice_folders in source.iter_rows(collection):
        for start in range(0, len(slice_ids), batch):  # a slice read is larger than a write may be
            ids, vectors = slice_ids[start : start + batch], slice_vectors[start : start + batch]
            labels, folders = slice_labels[start : start + batch], slice_folders[start : start + batch]
            held = target.stored_ids(collection, ids)
            new = [n for n, image in enumerate(ids) if image not in held]
            if new:
                target.upsert(collection, [ids[n] for n in new], vectors[new], [labels[n] for n in new],
                              [folders[n] for n in new])
            copied, present = copied + len(new), present + len(held)
            progress("vectors", copied + present, total)
            failpoints.reach("migrate-batch")
    target.seal(collection)
    return copied, present


def _copy_records(collection: str, source: Catalog, target: Catalog, batch: int, progress: Progress) -> int:
    total = source.count(collection, None)
    copied = 0
    for records in source.iter_records(collection, batch):
        target.upsert(collection, records)
        copied += len(records)
        progress("records", copied, total)
        failpoints.reach("migrate-batch")
    return copied


def _verify_vectors(result: Migration, source: VectorStore, target: VectorStore) -> Migration:
    collection = result.collection
    expected, found = source.count(collection), target.count(collection)
    if found != expected:
        raise Conflict(f"the target Milvus holds {found:,} vectors of {collection!r}, the source {expected:,}: "
                       "run the migration again to finish it")
    sample = _sample_ids(source, collection)
    if not sample:
        return Migration(**{**asdict(result), "vectors": found})
    stored = source.vectors(collection, sample)
    queries = np.stack([stored[image] for image in sample])
    before, after = source.search(collection, queries, 10), target.search(collection, queries, 10)
    agreement = float(np.mean([len({h.id for h in a} & {h.id for h in b}) / max(1, len(a))
                               for a, b in zip(before, after, strict=True)]))
    itself = float(np.mean([bool(hits) and hits[0].id == image for image, hits in zip(sample, after, strict=True)]))
    return Migration(**{**asdict(result), "vectors": found, "top10_agreement": agreement, "finds_itself": itself})


def _sample_ids(store: VectorStore, collection: str) -> list[int]:
    """SAMPLE ids spread over the collection: a reservoir over one pass of its ids."""
    rng = np.random.default_rng(0)
    chosen: list[int] = []
    for seen, image in enumerate(store.iter_ids(collection)):
        if len(chosen) < SAMPLE:
            chosen.append(image)
        elif (slot := int(rng.integers(0, seen + 1))) < SAMPLE:
            chosen[slot] = image
    return chosen


def _verify_records(result: Migration, source: Catalog, target: Catalog) -> Migration:
    expected, found = source.count(result.collection, None), target.count(result.collection, None)
    if found != expected:
        raise Conflict(f"the target catalog holds {found:,} records of {result.collection!r}, the source "
                       f"{expected:,}: run the migration again to finish it")
    return Migration(**{**asdict(result), "records": found})
