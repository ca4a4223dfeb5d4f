"""The Milvus side: one collection per image collection, vectors keyed by image id.

Vectors are L2-normalised, so inner product (IP) is cosine similarity. Which index a
collection gets, and the smaller one a server collection moves to as it grows: `vector_index`.

Consistency: collections are created Strong, so a count or a reconcile listing right after a
write is exact. Searches and reads by id (what a user waits for) ask a server for Session
consistency instead: they see every write of this process (pymilvus sends the last write's
timestamp of the collection as the guarantee) and otherwise do not wait for the server's newest
timestamp. Measured on a Milvus 2.3 standalone at 20k vectors: Strong 379 ms a search, Session
11 ms; Eventually is as fast but missed 20 of 20 vectors searched right after their upsert.
Milvus 2.3 answers a delete without its timestamp, so pymilvus cannot wait for it: the first
read of a collection after a delete here asks for Strong, once.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from imgsearch import runtime
from imgsearch.encoder_names import SIZES, settings_of
from imgsearch.errors import Conflict, Unavailable, renamed
from imgsearch.settings import is_lite_uri
from imgsearch.vector_reads import read_all
from imgsearch.vector_index import (
    INDEX_PARAMS, INDEX_PROPERTY, default_index, grown_index, search_params,
)
from imgsearch.writer_lock import CollectionWriterLock

T = TypeVar("T")
log = logging.getLogger(__name__)
VECTOR_FIELD = "vector"
ENCODER_PROPERTY = "imgsearch.encoder"  # a collection property: the encoder of its vectors
# All that existed before collections recorded their encoder: Keras, pooling in the network.
UNRECORDED_ENCODERS = re.compile(r"resnet50/(avg|max)/(fp32|bf16)")
ENCODER_CHECK_SECONDS = 5.0  # a describe per search costs ~1.4 ms on Lite; once in 5 s does not
MAX_LABELS = 64
LABEL_LENGTH = 128
FOLDER_LENGTH = 4096
# What searches and reads by id ask a server for (see the module's docstring).
READ_CONSISTENCY = "Session"
# Ids fit in 53 bits so that they survive JSON in a browser (IEEE doubles).
ID_BITS = 53


class VectorStoreError(Unavailable):
    """Milvus is unreachable or refused an operation."""

    backend = "Milvus"


class EncoderMismatch(Conflict):
    """A collection's vectors come from another encoder than this process'."""

    def __init__(self, collection: str, recorded: str | None, current: str) -> None:
        self.collection, self.recorded, self.current = collection, recorded, current
        if recorded is None:
            held = "vectors of Keras (made before collections recorded their encoder)"
            setting = "PRECISION=fp32 POOLING=avg (or max, if it was made with max)"
        else:
            held, setting = f"vectors of {recorded}", settings_of(recorded, SIZES in recorded + current)
        super().__init__(
            f"collection {collection!r} holds {held}, this process encodes with {current}: "
            f"set {setting} to use it, or index into another collection "
            f"(--collection), or drop it (imgsearch drop) and index again to re-embed"
        )


def image_id(canonical_path: str) -> int:
    """A deterministic positive id from an image's canonical path."""
    digest = hashlib.blake2b(canonical_path.encode("utf-8", "surrogateescape"), digest_size=8)
    return int.from_bytes(digest.digest(), "big") >> (64 - ID_BITS)


@dataclass(frozen=True)
class Hit:
    id: int
    score: float


class VectorStore:
    """A thin typed face over `pymilvus.MilvusClient`."""

    def __init__(self, uri: str, token: str = "", dimension: int = 2048, index_type: str = "") -> None:
        MilvusClient = runtime.pymilvus().MilvusClient

        self.uri = uri
        self.dimension = dimension
        self.embedded = embedded = is_lite_uri(uri)
        if embedded:
            Path(uri).parent.mkdir(parents=True, exist_ok=True)
        try:
            # pymilvus pings an idle connection every 10 s; Milvus Lite's gRPC server allows one in 5
            # minutes and answers with GOAWAY "too_many_pings", which gRPC prints on the terminal of
            # every long-lived process (watch, serve). Pings stay on while calls are in flight.
            self.client = MilvusClient(uri=uri, token=token, timeout=10,
                                       grpc_options={"grpc.keepalive_permit_without_calls": False})
            # A `milvus-lite server` is Milvus Lite behind a URL: it gets Lite's choices.
            self.is_lite = embedded or str(self.client.get_server_version()).startswith("milvus_lite")
        except Exception as error:  # noqa: BLE001 - pymilvus raises many kinds
            reason = _reason(error)
            if runtime.LITE_MEMTABLE_VARIABLE in reason:  # Lite refused its setting: nothing to reach
                raise VectorStoreError(f"Milvus Lite at {uri}: {reason}") from None
            raise VectorStoreError(f"cannot reach Milvus at {uri}: {reason}") from None
        self.index_type = index_type or default_index(self.is_lite)
        self.index_chosen = bool(index_type)  # by MILVUS_INDEX: then a grown collection keeps it
        # Milvus Lite's engine takes one writer per collection at a time.
        self._writer = CollectionWriterLock(uri) if self.is_lite else None
        self._ready: set[str] = set()
        self._index_types: dict[str, tuple[str, float]] = {}  # collection -> (index type, when asked)
        self._encoders: dict[str, tuple[str, float]] = {}  # collection -> (checked encoder, when)
        self._deleted_from: set[str] = set()  # collections whose next read asks for Strong
        self._lock = threading.Lock()

    # -- collections -------------------------------------------------------
    def ensure_collection(self, name: str, encoder: str | None = None) -> None:
        """Create (recording `encoder`) and load the collection if needed; with
        `encoder`, refuse a collection whose vectors came from another encoder."""
        if name not in self._ready:
            with self._lock:
                if name not in self._ready:
                    with _errors(self.uri, f"create collection {name}"):
                        if not self.client.has_collection(name):
                            self._create(name, encoder)
                        elif not self.client.list_indexes(name, VECTOR_FIELD):
                            self._restore_index(name)
                        self.client.load_collection(name)
                    self._ready.add(name)
        if encoder is not None and not self._checked(name, encoder):
            if not self.has_collection(name):  # dropped by another process since it was ready here
                self._ready.discard(name)
                self.ensure_collection(name, encoder)
                return
            self.check_encoder(name, encoder)

    def recorded_encoder(self, name: str) -> str | None:
        """The encoder recorded with the collection when it was created (None: made before
        collections recorded it)."""
        return self._properties(name).get(ENCODER_PROPERTY)

    def _properties(self, name: str) -> dict[str, str]:
        with _errors(self.uri, f"describe collection {name}"):
            return dict(self.client.describe_collection(name).get("properties") or {})

    def check_encoder(self, name: str, encoder: str) -> None:
        """Refuse to mix vectors of two encoders in one collection (EncoderMismatch). A
        collection that records none is older than the record, so Keras made it with avg or
        max pooling: it adopts such an `encoder` (fp32 and bf16 agree to a cosine of 0.9999)
        and refuses a LiteRT or GeM one."""
        if self._checked(name, encoder):
            return
        if not self.has_collection(name):
            return  # nothing stored yet: ensure_collection records it on creation
        recorded = self.recorded_encoder(name)
        if recorded is None:
            if not UNRECORDED_ENCODERS.fullmatch(encoder):
                raise EncoderMismatch(name, None, encoder)
            with self._writing(name), _errors(self.uri, f"record the encoder of {name}"):
                self.client.alter_collection_properties(name, properties={ENCODER_PROPERTY: encoder})
            recorded = encoder
        if recorded != encoder:
            raise EncoderMismatch(name, recorded, encoder)
        self._encoders[name] = (encoder, time.monotonic())

    def _checked(self, name: str, encoder: str) -> bool:
        """Checked for `encoder` within ENCODER_CHECK_SECONDS: another process may drop the
        collection and create it again with another encoder, so a check does not last."""
        checked = self._encoders.get(name)
        return checked is not None and checked[0] == encoder and (
            time.monotonic() - checked[1] < ENCODER_CHECK_SECONDS)

    def _create(self, name: str, encoder: str | None = None) -> None:
        DataType = runtime.pymilvus().DataType

        schema = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field(VECTOR_FIELD, DataType.FLOAT_VECTOR, dim=self.dimension)
        schema.add_field(
            "labels", DataType.ARRAY, element_type=DataType.VARCHAR,
            max_capacity=MAX_LABELS, max_length=LABEL_LENGTH,
        )
        schema.add_field("folder", DataType.VARCHAR, max_length=FOLDER_LENGTH)
        index = self._index_params(self.index_type)
        properties = {ENCODER_PROPERTY: encoder} if encoder else {}
        self.client.create_collection(name, schema=schema, consistency_level="Strong", properties=properties)
        # Milvus Lite lacks the AllocTimestamp call that pymilvus' index wait uses;
        # its FLAT index is ready at once, so Lite does not wait.
        self.client.create_index(name, index, sync=not self.is_lite)

    def _restore_index(self, name: str) -> None:
        """A collection without an index cannot be loaded: a rebuild (`_grow_index`) was stopped
        between dropping the old index and creating the new one. It gets the index a seal would
        give it at its size, recorded as a rebuild's is."""
        rows = int(self.client.get_collection_stats(name).get("row_count", 0))
        grown = grown_index(self.index_type, rows, is_lite=self.is_lite, chosen=self.index_chosen)
        log.warning("collection %s had no index (a rebuild was stopped): creating %s", name, grown or self.index_type)
        self.client.create_index(name, self._index_params(grown or self.index_type), sync=not self.is_lite)
        if grown:
            note = f"{grown} {INDEX_PARAMS[grown]} (restored at {rows:,} vectors after a stopped rebuild)"
            self.client.alter_collection_properties(name, properties={INDEX_PROPERTY: note})

    def _index_params(self, index_type: str) -> Any:
        index = self.client.prepare_index_params()
        index.add_index(VECTOR_FIELD, index_type=index_type, metric_type="IP", params=INDEX_PARAMS.get(index_type, {}))
        return index

    def exists(self, name: str) -> bool:
        """`has_collection`, answered from memory once the collection is known."""
        return name in self._ready or self.has_collection(name)

    def has_collection(self, name: str) -> bool:
        with _errors(self.uri, "list collections"):
            return bool(self.client.has_collection(name))

    def list_collections(self) -> list[str]:
        with _errors(self.uri, "list collections"):
            return sorted(self.client.list_collections())

    def drop(self, name: str) -> None:
        with self._writing(name), _errors(self.uri, f"drop collection {name}"):
            self.client.drop_collection(name)
        self._ready.discard(name)
        self._index_types.pop(name, None)
        self._encoders.pop(name, None)

    def seal(self, name: str) -> str | None:
        """After a run's writes. Milvus Lite: write the memtable of `name` into a segment with its
        index (Lite searches rows still in the memtable one by one: 174 ms a query at 2,000 rows,
        4.4 ms sealed, BENCHMARKS; it seals only every 16 MB). A Milvus server indexes its growing
        segments itself and rate-limits flush; there a collection that has grown past its default
        index is rebuilt with the smaller one (`vector_index`). Returns what was rebuilt."""
        if not self.has_collection(name):
            return None
        if not self.is_lite:
            return self._grow_index(name)
        with self._writing(name), _errors(self.uri, f"seal {name}"):
            self.client.flush(name)
        return None

    def _grow_index(self, name: str) -> str | None:
        current = self._index_of(name, fresh=True)
        count = self.count(name)
        grown = grown_index(current, count, is_lite=self.is_lite, chosen=self.index_chosen)
        if grown is None:
            return None
        index = self._index_params(grown)
        note = f"{grown} {INDEX_PARAMS[grown]} (was {current}; rebuilt at {count:,} vectors)"
        with _errors(self.uri, f"rebuild the index of {name} as {grown}"):
            self.client.flush(name)
            self.client.release_collection(name)
            self.client.drop_index(name, VECTOR_FIELD)
            self.client.create_index(name, index, sync=True)
            self.client.alter_collection_properties(name, properties={INDEX_PROPERTY: note})
            self.client.load_collection(name)
        self._index_types[name] = (grown, time.monotonic())
        return note

    def recorded_index(self, name: str) -> str | None:
        """What a rebuild recorded with the collection (None: it has the index it was made with)."""
        return self._properties(name).get(INDEX_PROPERTY)

    # -- rows --------------------------------------------------------------
    def upsert(
        self, name: str, ids: Sequence[int], vectors: np.ndarray,
        labels: Sequence[Sequence[str]], folders: Sequence[str],
    ) -> None:
        if not ids:
            return
        self.ensure_collection(name)
        rows = [
            {
                "id": int(image),
                VECTOR_FIELD: vector,  # pymilvus packs a float32 array as it is: 1.3 s less per 10k rows than a list
                "labels": [label[:LABEL_LENGTH] for label in label_list][:MAX_LABELS],
                "folder": folder[:FOLDER_LENGTH],
            }
            for image, vector, label_list, folder in zip(ids, vectors, labels, folders, strict=True)
        ]
        with self._writing(name):
            self._on_loaded(name, f"upsert into {name}", lambda: self.client.upsert(name, rows))

    def delete(self, name: str, ids: Sequence[int]) -> None:
        if not ids or not self.has_collection(name):
            return
        with self._writing(name), _errors(self.uri, f"delete from {name}"):
            self.client.delete(name, ids=[int(image) for image in ids])
        self._deleted_from.add(name)

    def vectors(self, name: str, ids: Sequence[int]) -> dict[int, np.ndarray]:
        """Stored vectors by id; ids not stored are absent."""
        if not ids or not self.has_collection(name):
            return {}
        rows = self._on_loaded(name, f"get from {name}", lambda: self.client.get(
            name, ids=[int(i) for i in ids], output_fields=[VECTOR_FIELD], **self._read_options(name)))
        return {int(row["id"]): np.asarray(row[VECTOR_FIELD], dtype=np.float32) for row in rows}

    def count(self, name: str) -> int:
        return self.count_if_exists(name) or 0

    def count_if_exists(self, name: str) -> int | None:
        """Vectors in the collection, None if there is no such collection."""
        if not self.has_collection(name):
            return None
        result = self._on_loaded(name, f"count {name}", lambda: self.client.query(
            name, filter="", output_fields=["count(*)"]))
        return int(result[0]["count(*)"])

    def iter_ids(self, name: str, batch: int = 8000) -> Iterator[int]:
        """Every stored id (for reconciling with the catalog)."""
        for rows in self._iterate(name, ["id"], batch, f"list ids of {name}"):
            yield from (int(row["id"]) for row in rows)

    def iter_vectors(self, name: str, batch: int = 8000) -> Iterator[tuple[list[int], np.ndarray]]:
        """Every stored vector with its id, `batch` at a time: (ids, a float32 matrix)."""
        for rows in self._iterate(name, ["id", VECTOR_FIELD], batch, f"read vectors of {name}"):
            yield ([int(row["id"]) for row in rows],
                   np.asarray([row[VECTOR_FIELD] for row in rows], dtype=np.float32))

    def iter_rows(self, name: str, batch: int = 8000
                  ) -> Iterator[tuple[list[int], np.ndarray, list[list[str]], list[str]]]:
        """Every stored row, `batch` at a time: (ids, a float32 matrix, labels, folders)."""
        for rows in self._iterate(name, ["id", VECTOR_FIELD, "labels", "folder"], batch, f"read {name}"):
            yield ([int(row["id"]) for row in rows],
                   np.asarray([row[VECTOR_FIELD] for row in rows], dtype=np.float32),
                   [[str(label) for label in row["labels"] or []] for row in rows],
                   [str(row["folder"]) for row in rows])

    def stored_ids(self, name: str, ids: Sequence[int]) -> set[int]:
        """Which of `ids` the collection holds."""
        if not ids or not self.has_collection(name):
            return set()
        rows = self._on_loaded(name, f"get from {name}", lambda: self.client.get(
            name, ids=[int(i) for i in ids], output_fields=["id"], **self._read_options(name)))
        return {int(row["id"]) for row in rows}

    def _iterate(self, name: str, fields: list[str], batch: int, operation: str) -> Iterator[list[dict[str, Any]]]:
        """Every row in ascending id order, slices of at most about `batch` (`vector_reads`)."""
        if not self.has_collection(name):
            return

        def query(expression: str, **options: Any) -> list[dict[str, Any]]:
            with _errors(self.uri, operation):
                return list(self.client.query(name, filter=expression, **options))

        def count(expression: str, first: bool) -> int:
            if first:  # the collection's Strong consistency: every earlier write is seen
                return int(self._on_loaded(name, operation, lambda: query(
                    expression, output_fields=["count(*)"]))[0]["count(*)"])
            return int(query(expression, output_fields=["count(*)"], consistency_level="Eventually")[0]["count(*)"])

        def fetch(expression: str, limit: int) -> list[dict[str, Any]]:
            return query(expression, output_fields=fields, limit=limit, consistency_level="Eventually",
                         strict_float32=True)

        yield from read_all(count, fetch, batch, transient=VectorStoreError)

    def search(
        self, name: str, vectors: np.ndarray, top_k: int, label: str | None = None
    ) -> list[list[Hit]]:
        """Nearest stored vectors by inner product, best first, one list per query.
        A collection this store has loaded is searched without asking Milvus first whether
        it exists (a round trip on every query); a failed search asks."""
        if name not in self._ready and not self.has_collection(name):
            return [[] for _ in vectors]
        params: dict[str, object] = {"metric_type": "IP", "params": search_params(self._index_of(name), top_k)}
        options = self._read_options(name)
        expression = f"array_contains(labels, {string_literal(label)})" if label else ""
        try:
            results = self._on_loaded(name, f"search {name}", lambda: self.client.search(
                name, data=[v.tolist() for v in vectors], limit=top_k, filter=expression,
                search_params=params, anns_field=VECTOR_FIELD, **options,
            ))
        except VectorStoreError:
            if not self.has_collection(name):  # dropped by another process since it was loaded here
                self._index_types.pop(name, None)
                return [[] for _ in vectors]
            raise
        return [[Hit(int(hit["id"]), float(hit["distance"])) for hit in hits] for hits in results]

    def _read_options(self, name: str) -> dict[str, str]:
        """Session consistency on a server, Strong once after a delete here (see the module's
        docstring); Milvus Lite is one process and always consistent."""
        if self.is_lite:
            return {}
        if name in self._deleted_from:
            self._deleted_from.discard(name)
            return {"consistency_level": "Strong"}
        return {"consistency_level": READ_CONSISTENCY}

    def _writing(self, name: str) -> AbstractContextManager[None]:
        return self._writer.held(name) if self._writer is not None else nullcontext()

    def _on_loaded(self, name: str, operation: str, call: Callable[[], T]) -> T:
        """`call` on a loaded collection. A Milvus server that restarted comes back
        with its collections released: load again and retry once."""
        self.ensure_collection(name)
        try:
            with _errors(self.uri, operation):
                return call()
        except VectorStoreError as error:
            self._ready.discard(name)  # check (and load) again on the next call
            cause = str(error.__cause__ or "")
            if "released" not in cause and "not loaded" not in cause and "load()" not in cause:
                raise
        self.ensure_collection(name)
        with _errors(self.uri, operation):
            return call()

    def _index_of(self, name: str, fresh: bool = False) -> str:
        """The collection's index type (it may predate a settings change), asked again after
        ENCODER_CHECK_SECONDS: another process may have rebuilt it as it grew."""
        known = self._index_types.get(name)
        if fresh or known is None or time.monotonic() - known[1] >= ENCODER_CHECK_SECONDS:
            with _errors(self.uri, f"describe the index of {name}"):
                described = self.client.describe_index(name, VECTOR_FIELD)
            if not described:  # none: a rebuild was stopped halfway (_restore_index)
                self._ready.discard(name)
                self.ensure_collection(name)
                with _errors(self.uri, f"describe the index of {name}"):
                    described = self.client.describe_index(name, VECTOR_FIELD)
            known = (str(described.get("index_type", self.index_type)), time.monotonic())
            self._index_types[name] = known
        return known[0]

    def ping(self, timeout: float = 3.0) -> None:
        with _errors(self.uri, "reach Milvus"):
            self.client.list_collections(timeout=timeout)

    def close(self) -> None:
        """Close the client; an embedded Milvus Lite file is released too, so that
        another process can open it (Lite opens a file in one process at a time)."""
        self.client.close()
        if self.embedded:
            from milvus_lite.server_manager import server_manager_instance

            server_manager_instance.release_server(self.uri)


def string_literal(value: str) -> str:
    """A Milvus expression string literal. Milvus Lite and 2.3 have no filter
    templates, so the value is escaped here: backslash and quote, and control
    characters are refused outright."""
    if any(ord(character) < 0x20 for character in value) or len(value) > LABEL_LENGTH:
        raise ValueError(f"invalid label {value[:40]!r}: no control characters, at most {LABEL_LENGTH}")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _errors(uri: str, operation: str) -> AbstractContextManager[None]:
    """Any pymilvus failure is renamed, to a VectorStoreError naming the operation."""
    return renamed(Exception, lambda failure: VectorStoreError(
        f"Milvus ({uri}) could not {operation}: {_reason(failure)}"))


def _reason(error: BaseException) -> str:
    message = getattr(error, "message", None) or str(error) or type(error).__name__
    return " ".join(str(message).split())[:300]
