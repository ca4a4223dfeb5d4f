"""The SQL side: one `images` row per (collection, path), through SQLAlchemy 2.0's typed ORM.

Status moves `pending` -> `indexed` (or `failed`); deletes go through
`deleting`. A row is written `pending` before its vector and marked `indexed`
after, so a crash between the stores leaves a row the next run repairs, never
a searchable vector without a record. SQLite by default; MySQL/MariaDB through
pymysql. Every statement is built by SQLAlchemy with bound parameters.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON, BigInteger, ColumnElement, DateTime, Index, Integer, String, Text, delete, func, select, update,
)
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from imgsearch.errors import Unavailable, renamed
from imgsearch.sql_engine import WRITE_OPTION, engine_for

PENDING, INDEXED, FAILED, DELETING = "pending", "indexed", "failed", "deleting"
# MySQL compares VARCHAR case-insensitively by default; paths are case-sensitive.
PathString = String(4096).with_variant(
    mysql.VARCHAR(4096, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"
)


class Base(DeclarativeBase):
    pass


class ImageRecord(Base):
    __tablename__ = "images"

    collection: Mapped[str] = mapped_column(String(255), primary_key=True)
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    path: Mapped[str] = mapped_column(PathString)
    sha256: Mapped[str | None] = mapped_column(String(64))
    size: Mapped[int | None] = mapped_column(BigInteger)
    mtime: Mapped[int | None] = mapped_column(BigInteger, comment="st_mtime_ns")
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    labels: Mapped[list[str]] = mapped_column(JSON, default=list)
    folder: Mapped[str] = mapped_column(PathString, default="")
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    error: Mapped[str | None] = mapped_column(Text)
    indexed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        # MySQL indexes at most 3072 bytes: the unique key covers the first 500
        # characters of the path; the primary key (a hash of the full path) covers the rest.
        Index("uq_images_collection_path", "collection", "path", unique=True,
              mysql_length={"path": 500}, mariadb_length={"path": 500}),
        Index("ix_images_collection_sha256", "collection", "sha256"),
        Index("ix_images_collection_status", "collection", "status"),
        # Browsing newest first, a keyset page at a time (browse.py).
        Index("ix_images_collection_indexed_at", "collection", "indexed_at", "id"),
        # A path in any collection (the seed's `/data?image_path=`): without it, a scan of every row.
        Index("ix_images_path", "path", mysql_length={"path": 500}, mariadb_length={"path": 500}),
    )

    def as_row(self) -> dict[str, Any]:
        """The record as `Catalog.upsert` takes it back (a copy, a resolution's undo)."""
        return {"id": self.id, **{key: getattr(self, key) for key in UPDATABLE}}

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "collection": self.collection, "path": self.path,
            "sha256": self.sha256, "size": self.size, "mtime": self.mtime,
            "width": self.width, "height": self.height, "labels": list(self.labels or []),
            "folder": self.folder, "status": self.status, "error": self.error,
            "indexed_at": utc_iso(self.indexed_at),
        }


def utc_iso(moment: datetime | None) -> str | None:
    """ISO 8601 with its offset: the databases hand back the UTC times they were given without one."""
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()


class CatalogError(Unavailable):
    """The database is unreachable or refused an operation."""

    backend = "the database"


@dataclass(frozen=True)
class Known:
    """What the catalog knows of one path: enough to decide whether to re-index it."""
    id: int
    size: int | None
    mtime: int | None
    sha256: str | None
    status: str


UPDATABLE = ("path", "sha256", "size", "mtime", "width", "height", "labels", "folder",
             "status", "error", "indexed_at")


class Catalog:
    def __init__(self, url: str) -> None:
        self.url = url
        self.where = describe(url)
        self.engine = engine_for(url)
        # Transactions that write start with BEGIN IMMEDIATE on SQLite (see _engine).
        self.writer = self.engine.execution_options(**{WRITE_OPTION: True})
        self._create_tables()

    def _create_tables(self, attempts: int = 5) -> None:
        """Create the table and indexes if missing. On SQLite the check and the
        creation are one `BEGIN IMMEDIATE` transaction, so openers take turns. MySQL's
        DDL is not transactional: two processes starting on a new database both see
        no table and both create it, and the loser's "already exists" means the work
        is done (seen with two index runs at once). Check again."""
        for attempt in range(attempts):
            try:
                Base.metadata.create_all(self.writer)
                # create_all adds indexes only with a new table: one added later comes here.
                with self.writer.begin() as connection:
                    for index in Base.metadata.tables[ImageRecord.__tablename__].indexes:
                        index.create(connection, checkfirst=True)
                return
            except SQLAlchemyError as error:
                reason = _reason(error)
                raced = any(sign in reason for sign in ("already exists", "Duplicate key name"))
                if not raced or attempt == attempts - 1:
                    raise CatalogError(f"cannot reach the database ({self.where}): {reason}") from None
                time.sleep(0.1 * (attempt + 1))

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def upsert(self, collection: str, rows: Sequence[dict[str, Any]]) -> None:
        """Insert or update rows by (collection, id); safe against concurrent writers."""
        if not rows:
            return
        values = [{"collection": collection, **row} for row in rows]
        update = [key for key in UPDATABLE if key in values[0]]
        # In parts, in one transaction: SQLite takes at most 32,766 bound values a statement.
        with database_errors(self.where, "write records"), self.writer.begin() as connection:
            for part in _parts(values):
                connection.execute(self._insert(list(part), update))

    def add_pending(self, collection: str, rows: Sequence[dict[str, Any]]) -> None:
        """Insert `pending` rows for images the catalog does not know yet; a row
        that exists (perhaps written by a concurrent run) is left as it is."""
        values = [{"collection": collection, **row, "status": PENDING} for row in rows]
        with database_errors(self.where, "write records"), self.writer.begin() as connection:
            for part in _parts(values):
                connection.execute(self._insert(list(part), []))

    def _insert(self, values: list[dict[str, Any]], update: Sequence[str]) -> Any:
        """INSERT ... ON CONFLICT (collection, id) in the dialect's own form: the
        `update` columns take the new values or, with none, the row stays as it is."""
        dialect = self.engine.dialect.name
        if dialect in ("mysql", "mariadb"):
            mysql_statement = mysql.insert(ImageRecord).values(values)
            # With nothing to update, a no-op update: MySQL's form of "on conflict do nothing".
            changes = {key: mysql_statement.inserted[key] for key in update} or {
                "status": ImageRecord.__table__.c.status}
            return mysql_statement.on_duplicate_key_update(changes)
        statement: Any
        if dialect == "sqlite":
            statement = sqlite.insert(ImageRecord).values(values)
        else:
            from sqlalchemy.dialects import postgresql

            statement = postgresql.insert(ImageRecord).values(values)
        if not update:
            return statement.on_conflict_do_nothing()
        return statement.on_conflict_do_update(
            index_elements=["collection", "id"], set_={key: statement.excluded[key] for key in update},
        )

    def set_status(
        self, collection: str, ids: Iterable[int], status: str, *, error: str | None = None
    ) -> None:
        ids = list(ids)
        if not ids:
            return
        changes: dict[str, Any] = {"status": status, "error": error}
        if status == INDEXED:
            changes["indexed_at"] = datetime.now(UTC)
        with database_errors(self.where, "update records"), self.writer.begin() as connection:
            for part in _parts(ids):
                connection.execute(
                    update(ImageRecord)
                    .where(ImageRecord.collection == collection, ImageRecord.id.in_(part))
                    .values(changes)
                )

    def known(self, collection: str, paths: Sequence[str] | None = None,
              under: str | None = None) -> dict[str, Known]:
        """Paths of a collection with their size, mtime, sha256 and status: every one, those of
        `paths`, or those at or below the folder `under` (an index range, not the collection)."""
        columns = (ImageRecord.path, ImageRecord.id, ImageRecord.size, ImageRecord.mtime,
                   ImageRecord.sha256, ImageRecord.status)
        if paths is not None:
            queries = [select(*columns).where(ImageRecord.collection == collection, ImageRecord.path.in_(part))
                       for part in _parts(sorted(set(paths)))]
        elif under is not None:
            queries = [select(*columns).where(ImageRecord.collection == collection, self._at_or_below(under))]
        else:
            queries = [select(*columns).where(ImageRecord.collection == collection)]
        found: dict[str, Known] = {}
        with database_errors(self.where, "read records"), self.engine.connect() as connection:
            for query in queries:
                found.update((row.path, Known(row.id, row.size, row.mtime, row.sha256, row.status))
                             for row in connection.execute(query))
        return found

    def indexed_by_sha256(self, collection: str, digests: Iterable[str]) -> dict[str, int]:
        """For each digest an indexed image of this collection has, one such image's id.
        The status is checked here, not in SQL: with it there, SQLite searches by (collection,
        status), which nearly every row matches, once per chunk."""
        found: dict[str, int] = {}
        digests = sorted(set(digests))
        with database_errors(self.where, "read records"), self.engine.connect() as connection:
            for part in _parts(digests):
                query = select(ImageRecord.sha256, ImageRecord.id, ImageRecord.status).where(
                    ImageRecord.collection == collection, ImageRecord.sha256.in_(part),
                )
                for row in connection.execute(query):
                    if row.status == INDEXED:
                        found.setdefault(row.sha256, row.id)
        return found

    def get(self, collection: str, ids: Sequence[int]) -> dict[int, ImageRecord]:
        found: dict[int, ImageRecord] = {}
        with database_errors(self.where, "read records"), self.session() as session:
            for part in _parts(list(ids)):
                query = select(ImageRecord).where(
                    ImageRecord.collection == collection, ImageRecord.id.in_(part)
                )
                found.update({record.id: record for record in session.scalars(query)})
        return found

    def iter_records(self, collection: str, batch: int = 1000) -> Iterator[list[dict[str, Any]]]:
        """Every record of the collection as `upsert` takes it, `batch` at a time in id order
        (each batch a search of the primary key after the last id: no OFFSET scan)."""
        after = -1
        while True:
            query = (select(ImageRecord).where(ImageRecord.collection == collection, ImageRecord.id > after)
                     .order_by(ImageRecord.id).limit(batch))
            with database_errors(self.where, "read records"), self.session() as session:
                records = list(session.scalars(query))
            if not records:
                return
            yield [record.as_row() for record in records]
            after = records[-1].id

    def by_path(self, collection: str, path: str) -> ImageRecord | None:
        query = select(ImageRecord).where(
            ImageRecord.collection == collection, ImageRecord.path == path
        )
        with database_errors(self.where, "read records"), self.session() as session:
            return session.scalars(query).first()

    def under_path(self, collection: str, prefix: str) -> list[ImageRecord]:
        """Records whose path is `prefix` or lies below the folder `prefix`."""
        query = select(ImageRecord).where(ImageRecord.collection == collection, self._at_or_below(prefix))
        with database_errors(self.where, "read records"), self.session() as session:
            return list(session.scalars(query))

    def _at_or_below(self, prefix: str) -> ColumnElement[bool]:
        folder = prefix.rstrip("/") + "/"
        below = func.substr(ImageRecord.path, 1, len(folder)) == folder
        if self.engine.dialect.name in ("sqlite", "mysql", "mariadb"):
            # Paths compare byte by byte there (SQLite's BINARY, utf8mb4_bin): those below
            # "a/b/" lie from "a/b/" to "a/b0" ("0" follows "/"), a range of the path index.
            beyond = folder[:-1] + chr(ord("/") + 1)
            below = (ImageRecord.path >= folder) & (ImageRecord.path < beyond) & below
        return (ImageRecord.path == prefix) | below

    def ids_with_status(self, collection: str, statuses: Sequence[str]) -> list[int]:
        query = select(ImageRecord.id).where(
            ImageRecord.collection == collection, ImageRecord.status.in_(statuses)
        )
        with database_errors(self.where, "read records"), self.engine.connect() as connection:
            return [row.id for row in connection.execute(query)]

    def delete(self, collection: str, ids: Iterable[int]) -> None:
        ids = list(ids)
        with database_errors(self.where, "delete records"), self.writer.begin() as connection:
            for part in _parts(ids):
                connection.execute(
                    delete(ImageRecord).where(
                        ImageRecord.collection == collection, ImageRecord.id.in_(part)
                    )
                )

    def count(self, collection: str, status: str | None = INDEXED) -> int:
        query = select(func.count()).select_from(ImageRecord).where(
            ImageRecord.collection == collection
        )
        if status is not None:
            query = query.where(ImageRecord.status == status)
        with database_errors(self.where, "count records"), self.engine.connect() as connection:
            return int(connection.execute(query).scalar_one())

    def status_counts(self, collection: str) -> dict[str, int]:
        """Records of the collection by status, in one query; empty for an unknown collection."""
        query = (select(ImageRecord.status, func.count()).where(ImageRecord.collection == collection)
                 .group_by(ImageRecord.status))
        with database_errors(self.where, "count records"), self.engine.connect() as connection:
            return {status: int(number) for status, number in connection.execute(query)}

    def failures(self, collection: str, limit: int = 1000) -> list[tuple[str, str]]:
        # Sorted here: ORDER BY path in SQL makes SQLite walk the collection's path index,
        # every row of it, rather than the few failed ones by status.
        query = select(ImageRecord.path, ImageRecord.error).where(
            ImageRecord.collection == collection, ImageRecord.status == FAILED)
        with database_errors(self.where, "read records"), self.engine.connect() as connection:
            failed = sorted((row.path, row.error or "") for row in connection.execute(query))
        return failed[:limit]

    def label_counts(self, collection: str) -> dict[str, int]:
        """How many indexed images carry each label, most frequent first."""
        query = select(ImageRecord.labels).where(
            ImageRecord.collection == collection, ImageRecord.status == INDEXED
        )
        counts: dict[str, int] = {}
        with database_errors(self.where, "read records"), self.engine.connect() as connection:
            for (labels,) in connection.execute(query):
                for label in labels or []:
                    counts[label] = counts.get(label, 0) + 1
        return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))

    def find_indexed_path(self, path: str) -> ImageRecord | None:
        """An indexed record of this exact path, in any collection."""
        query = select(ImageRecord).where(ImageRecord.path == path, ImageRecord.status == INDEXED).limit(1)
        with database_errors(self.where, "read records"), self.session() as session:
            return session.scalars(query).first()

    def collections(self) -> dict[str, int]:
        """Indexed image count per collection that has any record."""
        query = (
            select(ImageRecord.collection, func.count())
            .where(ImageRecord.status == INDEXED)
            .group_by(ImageRecord.collection)
        )
        with database_errors(self.where, "read records"), self.engine.connect() as connection:
            return {row[0]: int(row[1]) for row in connection.execute(query)}

    def drop(self, collection: str) -> None:
        with database_errors(self.where, "delete records"), self.writer.begin() as connection:
            connection.execute(delete(ImageRecord).where(ImageRecord.collection == collection))

    def ping(self) -> None:
        with database_errors(self.where, "reach the database"), self.engine.connect() as connection:
            connection.execute(select(1))

    def close(self) -> None:
        self.engine.dispose()


def _parts(items: Sequence[Any], size: int = 500) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def database_errors(where: str, operation: str) -> AbstractContextManager[None]:
    """Only a database failure is renamed, to a CatalogError naming the operation."""
    return renamed(SQLAlchemyError, lambda failure: CatalogError(
        f"the database ({where}) could not {operation}: {_reason(failure)}"))


def _reason(error: BaseException) -> str:
    original = getattr(error, "orig", None)
    text = str(original if original is not None else error).splitlines()[0]
    return text[:300]


def describe(url: str) -> str:
    """'mariadb at 127.0.0.1:3306/test' or 'sqlite at /path/catalog.db': no password."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return f"sqlite at {parsed.database or ':memory:'}"
    return f"{backend} at {parsed.host or 'localhost'}:{parsed.port or ''}/{parsed.database or ''}"
