"""The SQLAlchemy engine a catalog runs on: SQLite in WAL mode, where a transaction that
writes takes the write lock first (see `_sqlite_engine`), and other databases pooled and
checked before use. Kept apart from `catalog.py`, which holds what is stored and asked."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url

# An execution option: set on the catalog's writer, it makes SQLite begin IMMEDIATE.
WRITE_OPTION = "imgsearch_writes"


def engine_for(url: str) -> Engine:
    """The engine of a catalog URL: SQLite set up as below (its folder made), any other as pooled."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        return _sqlite_engine(url)
    return create_engine(url, pool_pre_ping=True, pool_recycle=1800, pool_size=5, max_overflow=10)


def _sqlite_engine(url: str) -> Engine:
    """SQLAlchemy's documented pysqlite recipe (dialects/sqlite, "Serializable isolation /
    Savepoints / Transactional DDL"): pysqlite's own BEGIN is turned off and SQLAlchemy's
    `begin` event emits ours. A transaction that writes begins IMMEDIATE, taking the write
    lock first, where `busy_timeout` waits for another writer. A deferred one that read
    first and then writes after another writer committed gets "database is locked" at
    once: SQLite cannot wait there without deadlock (seen with two index runs starting
    together). Reads stay deferred, and in WAL mode never wait for the writer."""
    engine = create_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=30000")
        _use_wal(cursor)  # readers never block the writer
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        writes = connection.get_execution_options().get(WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writes else "BEGIN")

    return engine


def _use_wal(cursor: Any, attempts: int = 40) -> None:
    """Put the database in WAL mode. Switching takes an exclusive lock, and SQLite answers
    "database is locked" at once, without its busy wait, to a second process switching a new
    database at the same moment (seen: two index runs starting on a new catalog, 1 round in 6
    of 4 processes). WAL is then a property of the file, so whoever comes later finds it set."""
    for attempt in range(attempts):
        try:
            if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or attempt == attempts - 1:
                raise
            time.sleep(min(0.5, 0.02 * (attempt + 1)))
