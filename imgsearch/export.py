"""Export a collection: its vectors as `.npy` (float32) and its records as CSV, in the same
order, streamed one batch at a time so that memory stays flat whatever the collection's size.

The `.npy` header is written first with room for any row count and rewritten with the
real count at the end (the format pads its header with spaces: NEP 1), so the vectors
go to disk once, never held whole and never copied.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path

from imgsearch import failpoints
from imgsearch.catalog import INDEXED, Catalog
from imgsearch.errors import Conflict, NotFound
from imgsearch.vectors import VectorStore

VECTORS, RECORDS = "vectors.npy", "records.csv"
COLUMNS = ("id", "path", "labels", "size", "sha256")
HEADER_BYTES = 128  # magic, version, length and the dict, padded: room for any row count


@dataclass(frozen=True)
class Export:
    collection: str
    folder: Path
    images: int
    dimension: int

    def as_dict(self) -> dict[str, object]:
        return {"collection": self.collection, "images": self.images, "dimension": self.dimension,
                "vectors": str(self.folder / VECTORS), "records": str(self.folder / RECORDS)}


def export_collection(collection: str, vectors: VectorStore, catalog: Catalog, folder: Path,
                      batch: int = 8000) -> Export:
    """Write `folder/vectors.npy` and `folder/records.csv` (row n of one is row n of the other)
    for every indexed image; `folder` must not exist yet, so that nothing is overwritten."""
    if folder.exists():
        raise Conflict(f"{folder} exists: export into a new folder, so that nothing is overwritten")
    if not vectors.has_collection(collection):
        raise NotFound(f"no collection named {collection!r}")
    dimension = vectors.dimension  # until the first batch tells the collection's own
    partial = folder.with_name(folder.name + ".part")
    shutil.rmtree(partial, ignore_errors=True)  # what an interrupted export left
    partial.mkdir(parents=True)
    rows = 0
    try:
        with open(partial / VECTORS, "wb") as matrix, open(partial / RECORDS, "w", newline="") as table:
            matrix.write(npy_header(0, dimension))
            writer = csv.writer(table)
            writer.writerow(COLUMNS)
            for ids, batch_vectors in vectors.iter_vectors(collection, batch):
                dimension = batch_vectors.shape[1]
                records = catalog.get(collection, ids)
                for row, image in enumerate(ids):
                    record = records.get(image)
                    if record is None or record.status != INDEXED:
                        continue  # a vector a crash left without its record is not an image
                    matrix.write(batch_vectors[row].astype("<f4").tobytes())
                    writer.writerow((record.id, record.path, json.dumps(list(record.labels or [])),
                                     "" if record.size is None else record.size, record.sha256 or ""))
                    rows += 1
                failpoints.reach("export-batch")
            matrix.seek(0)
            matrix.write(npy_header(rows, dimension))
        os.replace(partial, folder)  # the folder appears whole, or not at all
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return Export(collection, folder, rows, dimension)


def npy_header(rows: int, dimension: int) -> bytes:
    """A `.npy` version 1.0 header for a C-order float32 matrix, HEADER_BYTES long."""
    text = f"{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {dimension}), }}"
    body = text.ljust(HEADER_BYTES - 10 - 1) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(body)) + body.encode("latin1")
