"""Keeping a collection equal to a folder, and the two stores equal to each other.

Sync = index what is new or changed (a moved file, byte-identical to an
indexed one, reuses its vector), then remove what is gone from disk. Gone
files are removed only after indexing, so a moved file still finds its old
record's vector.

Reconcile compares Milvus ids with catalog rows: vectors without a row are
deleted; `indexed` rows without a vector, and `pending` rows, are indexed
again (or removed when their file is gone); interrupted deletes are finished.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from imgsearch.catalog import DELETING, INDEXED, PENDING, Catalog, ImageRecord
from imgsearch.discover import Discovery, FoundImage, discover
from imgsearch.indexing import delete_images
from imgsearch.vectors import VectorStore, image_id


def gone_records(discovery: Discovery, catalog: Catalog, collection: str) -> list[ImageRecord]:
    """Rows under the synced folder whose file was not found on disk this time.

    A file that exists but could not be read this time (a problem) is kept:
    a passing permission or I/O error must not delete a user's index entry.
    A narrowed discovery (a watcher's batch) looks only at the records at or below its paths.
    """
    present = {image.path for image in discovery.images}
    troubled = {problem.path for problem in discovery.problems}
    records = {record.id: record for prefix in (discovery.only or (discovery.root,))
               for record in catalog.under_path(collection, prefix)}
    return [
        record
        for record in records.values()
        if record.path not in present and record.path not in troubled and not os.path.exists(record.path)
    ]


@dataclass
class Divergence:
    orphan_vectors: list[int] = field(default_factory=list)  # in Milvus, no row
    to_reindex: list[FoundImage] = field(default_factory=list)  # row pending, or indexed without vector
    missing_files: list[int] = field(default_factory=list)  # row whose file is gone
    interrupted_deletes: list[int] = field(default_factory=list)  # rows left `deleting`

    def as_dict(self) -> dict[str, int]:
        return {"orphan_vectors": len(self.orphan_vectors), "to_reindex": len(self.to_reindex),
                "missing_files": len(self.missing_files), "interrupted_deletes": len(self.interrupted_deletes)}


def find_divergence(catalog: Catalog, vectors: VectorStore, collection: str) -> Divergence:
    milvus_ids = set(vectors.iter_ids(collection))
    rows = catalog.known(collection)
    found = Divergence()
    row_ids = {known.id for known in rows.values()}
    found.orphan_vectors = sorted(milvus_ids - row_ids)
    for path, known in rows.items():
        if known.status == DELETING:
            found.interrupted_deletes.append(known.id)
        elif known.status == PENDING or (known.status == INDEXED and known.id not in milvus_ids):
            if not os.path.isfile(path):
                found.missing_files.append(known.id)
                continue
            images = discover(path).images
            if images:
                record = catalog.get(collection, [known.id]).get(known.id)
                labels = tuple(record.labels) if record and record.labels else images[0].labels
                image = images[0]
                found.to_reindex.append(FoundImage(image.path, image.size, image.mtime_ns, labels, image.folder))
    return found


def repair_without_model(
    divergence: Divergence, catalog: Catalog, vectors: VectorStore, collection: str
) -> None:
    """Delete stray vectors, rows of gone files and unfinished deletes; mark the
    rows to re-index `pending`, so that indexing cannot take them for unchanged."""
    vectors.delete(collection, divergence.orphan_vectors)
    delete_images(collection, divergence.missing_files + divergence.interrupted_deletes, catalog, vectors)
    catalog.set_status(collection, [image_id(image.path) for image in divergence.to_reindex], PENDING)
