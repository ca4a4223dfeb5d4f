"""What indexing does, free of any scheduler: plan the work, index one chunk, delete.

reader (read + sha256) -> decoder (thread pool, ahead of the model) -> encoder
(batched ResNet50) -> writer (catalog `pending`, Milvus upsert, catalog
`indexed`). The write order is what makes a crash harmless: at worst a row is
left `pending`, and the next plan picks it up again.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import numpy as np

from imgsearch import failpoints, resources
from imgsearch.catalog import DELETING, FAILED, INDEXED, PENDING, Catalog, Known
from imgsearch.decode import DecodedImage, DecodeError, decode_image
from imgsearch.discover import Discovery, FoundImage, is_within
from imgsearch.encoder import prefetch_map
from imgsearch.models import AnyEncoder
from imgsearch.vectors import VectorStore, image_id


@dataclass
class Plan:
    """Files to (re)consider, in chunks, and what needs no work at all."""

    chunks: list[list[FoundImage]]
    total: int  # images discovered
    unchanged: int  # size and mtime equal to an indexed record: not even read
    repaired_deletes: int = 0


@dataclass
class ChunkReport:
    indexed: int = 0  # embedded by the model
    reused: int = 0  # byte-identical to an indexed image: its vector copied
    unchanged: int = 0  # read, same sha256 as before: nothing written but size/mtime
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    seconds: float = 0.0
    pid: int = 0  # the process that ran the chunk (a Dask worker, or this one)
    model_builds: int = 0  # models that process had built by then

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def plan_index(
    discovery: Discovery, catalog: Catalog, vectors: VectorStore, collection: str, chunk_size: int,
    *, batch_size: int = 32, min_chunks: int = 4,
) -> Plan:
    """Compare discovered files with the catalog; chunk what may need work.

    A file whose size and mtime equal an `indexed` record's is skipped without
    reading it. Rows a crashed delete left in `deleting` are finished here.
    Small runs get smaller chunks (whole batches, at least `min_chunks` of
    them) so that chunks still overlap and progress moves.
    """
    known = _known_records(discovery, catalog, collection)
    repaired = _finish_deletes(catalog, vectors, collection)
    todo: list[FoundImage] = []
    unchanged = 0
    for image in discovery.images:
        record = known.get(image.path)
        if (
            record is not None and record.status == INDEXED
            and record.size == image.size and record.mtime == image.mtime_ns
        ):
            unchanged += 1
        else:
            todo.append(image)
    # New images are written `pending` now, so that the catalog shows what a run
    # has left to do if it fails or is killed (and `count` and reconcile see it).
    catalog.add_pending(collection, [_row(_Read(image, image_id(image.path)), PENDING)
                                     for image in todo if image.path not in known])
    size = chunk_size_for(len(todo), chunk_size, batch_size, min_chunks)
    chunks = [todo[start : start + size] for start in range(0, len(todo), size)]
    return Plan(chunks, len(discovery.images), unchanged, repaired)


def _known_records(discovery: Discovery, catalog: Catalog, collection: str) -> dict[str, Known]:
    """The records of the discovered paths, read by what was walked, not the whole collection, so
    that a run's memory and time follow its tree, not the collection it adds to: a watcher's batch
    reads its own paths; a walk, the records below its root (an index range), and by path the few
    images that symlinks resolved to outside the root."""
    paths = [image.path for image in discovery.images]
    if discovery.only:
        return catalog.known(collection, paths)
    outside = [path for path in paths if not is_within(path, discovery.root)]
    known = catalog.known(collection, under=discovery.root)
    if outside:
        known.update(catalog.known(collection, outside))
    return known


def chunk_size_for(images: int, chunk_size: int, batch_size: int, min_chunks: int) -> int:
    """`chunk_size`, or less for a small run: a multiple of the batch size giving `min_chunks`."""
    wanted = -(-images // min_chunks)  # ceiling division
    whole_batches = max(batch_size, -(-wanted // batch_size) * batch_size)
    return max(1, min(chunk_size, whole_batches))


def _finish_deletes(catalog: Catalog, vectors: VectorStore, collection: str) -> int:
    stuck = catalog.ids_with_status(collection, [DELETING])
    if stuck:
        vectors.delete(collection, stuck)
        catalog.delete(collection, stuck)
    return len(stuck)


@dataclass
class _Read:
    image: FoundImage
    id: int
    sha256: str | None = None
    size: int = 0
    mtime_ns: int = 0
    error: str | None = None


def _read_and_hash(image: FoundImage) -> _Read:
    item = _Read(image, image_id(image.path))
    try:
        with open(image.path, "rb") as handle:
            info = os.fstat(handle.fileno())
            digest = hashlib.sha256()
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        item.sha256, item.size, item.mtime_ns = digest.hexdigest(), info.st_size, info.st_mtime_ns
    except OSError as error:
        item.error = f"cannot read file: {error.strerror or error}"
    return item


def _decode_file(item: _Read, size: int) -> DecodedImage | str:
    """Decoded pixels (`size` x `size`), or the reason the file cannot be used."""
    try:
        with open(item.image.path, "rb") as handle:
            return decode_image(handle.read(), size)
    except DecodeError as error:
        return str(error)
    except OSError as error:
        return f"cannot read file: {error.strerror or error}"
    except MemoryError:
        return "image too large to decode in memory"


def index_chunk(
    images: Sequence[FoundImage],
    collection: str,
    catalog: Catalog,
    vectors: VectorStore,
    encoder: AnyEncoder,
    *,
    decode_threads: int = 2,
    clock: Callable[[], float] | None = None,
    write_slot: Callable[[], AbstractContextManager[object]] = nullcontext,
) -> ChunkReport:
    """Index one chunk. A bad image is recorded `failed` and skipped; a store
    failure raises (the caller retries the whole chunk, which is idempotent).

    `write_slot` is held around the stores' writes only, never the reading,
    decoding or model time: the Prefect task passes a global concurrency slot."""
    import time

    clock = clock or time.perf_counter
    started = clock()
    report = ChunkReport()
    vectors.ensure_collection(collection, encoder.name)
    reads = list(prefetch_map(_read_and_hash, images, decode_threads, ahead=4 * decode_threads))
    known = catalog.get(collection, [item.id for item in reads])

    failed: list[tuple[_Read, str]] = [(item, item.error) for item in reads if item.error]
    readable = [item for item in reads if not item.error]
    unchanged = [
        item for item in readable
        if (record := known.get(item.id)) is not None
        and record.status == INDEXED and record.sha256 == item.sha256
    ]
    unchanged_ids = {item.id for item in unchanged}
    candidates = [item for item in readable if item.id not in unchanged_ids]
    twins = catalog.indexed_by_sha256(collection, [item.sha256 for item in candidates if item.sha256])
    twin_vectors = vectors.vectors(collection, [twins[i.sha256] for i in candidates if i.sha256 in twins])
    reuse = [item for item in candidates if twins.get(item.sha256 or "") in twin_vectors]
    reuse_ids = {item.id for item in reuse}
    to_embed = [item for item in candidates if item.id not in reuse_ids]

    embedded: list[_Read] = []
    dims: dict[int, tuple[int, int]] = {}
    batches: list[np.ndarray] = []
    batch: list[np.ndarray] = []
    for item, decoded in zip(
        to_embed,
        prefetch_map(functools.partial(_decode_file, size=encoder.input_size), to_embed, decode_threads,
                     ahead=2 * encoder.batch_size),
        strict=True,
    ):
        if isinstance(decoded, str):
            failed.append((item, decoded))
            continue
        embedded.append(item)
        dims[item.id] = (decoded.width, decoded.height)
        batch.append(decoded.pixels)
        if len(batch) == encoder.batch_size:
            batches.append(encoder.embed(np.stack(batch)))
            batch = []
    if batch:
        batches.append(encoder.embed(np.stack(batch)))

    new_vectors = list(np.concatenate(batches)) if batches else []
    # A twin is any indexed image, usually not one of this chunk's: its size is read with it.
    twin_records = catalog.get(collection, [twins[item.sha256 or ""] for item in reuse]) if reuse else {}
    for item in reuse:
        new_vectors.append(twin_vectors[twins[item.sha256 or ""]])
        twin = twin_records.get(twins[item.sha256 or ""])
        if twin is not None and twin.width:
            dims[item.id] = (twin.width, twin.height or 0)
        else:
            dims.setdefault(item.id, (0, 0))
    written = embedded + reuse

    with write_slot():
        _write(collection, catalog, vectors, written, new_vectors, dims)
        if unchanged:
            catalog.upsert(collection, [_row(item, INDEXED) for item in unchanged])
        if failed:
            catalog.upsert(collection, [_row(item, FAILED, error=reason) for item, reason in failed])
            # A file that was indexed and is now broken must not stay searchable.
            vectors.delete(collection, [item.id for item, _ in failed if item.id in known])

    report.indexed, report.reused, report.unchanged = len(embedded), len(reuse), len(unchanged)
    report.failed = [(item.image.path, reason) for item, reason in failed]
    report.seconds = clock() - started
    report.pid, report.model_builds = os.getpid(), resources.model_builds()
    return report


def _write(
    collection: str, catalog: Catalog, vectors: VectorStore,
    items: list[_Read], embeddings: list[np.ndarray], dims: dict[int, tuple[int, int]],
) -> None:
    if not items:
        return
    rows = [_row(item, PENDING, dims=dims.get(item.id)) for item in items]
    catalog.upsert(collection, rows)
    vectors.upsert(
        collection, [item.id for item in items], np.stack(embeddings),
        [item.image.labels for item in items], [item.image.folder for item in items],
    )
    failpoints.reach("between-stores")
    catalog.set_status(collection, [item.id for item in items], INDEXED)


def _row(
    item: _Read, status: str, *, error: str | None = None, dims: tuple[int, int] | None = None
) -> dict[str, object]:
    row: dict[str, object] = {
        "id": item.id, "path": item.image.path, "sha256": item.sha256,
        "size": item.size or item.image.size, "mtime": item.mtime_ns or item.image.mtime_ns,
        "labels": list(item.image.labels), "folder": item.image.folder,
        "status": status, "error": error,
        "indexed_at": datetime.now(UTC) if status == INDEXED else None,
    }
    if dims is not None:
        row["width"], row["height"] = dims
    return row


def delete_images(
    collection: str, ids: Sequence[int], catalog: Catalog, vectors: VectorStore
) -> int:
    """Delete images from both stores: mark `deleting`, drop vectors, drop rows."""
    ids = list(ids)
    if not ids:
        return 0
    catalog.set_status(collection, ids, DELETING)
    vectors.delete(collection, ids)
    catalog.delete(collection, ids)
    return len(ids)
