from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from imgsearch.browse import browse
from imgsearch.catalog import DELETING, FAILED, INDEXED, PENDING, Catalog, CatalogError
from imgsearch.vectors import image_id


def row(path: str, status: str = PENDING, **extra: object) -> dict[str, object]:
    return {"id": image_id(path), "path": path, "sha256": "a" * 64, "size": 10, "mtime": 1,
            "labels": ["cat"], "folder": path.rsplit("/", 1)[0], "status": status, "error": None,
            **extra}


def test_upsert_is_idempotent_and_keyed_by_collection_and_id(database_url: str) -> None:
    catalog = Catalog(database_url)
    catalog.upsert("c1", [row("/p/a.jpg"), row("/p/b.jpg")])
    catalog.upsert("c1", [row("/p/a.jpg", INDEXED, size=11)])
    catalog.upsert("c2", [row("/p/a.jpg", INDEXED)])
    assert catalog.count("c1", status=None) == 2 and catalog.count("c1") == 1
    assert catalog.known("c1")["/p/a.jpg"].size == 11
    assert catalog.collections() == {"c1": 1, "c2": 1}


def test_add_pending_inserts_only_what_is_unknown(database_url: str) -> None:
    catalog = Catalog(database_url)
    catalog.upsert("c", [row("/p/a.jpg", INDEXED)])
    catalog.add_pending("c", [row("/p/a.jpg"), row("/p/b.jpg")])
    catalog.add_pending("c", [row("/p/b.jpg", size=99)])  # a second run planning the same file
    known = catalog.known("c")
    assert known["/p/a.jpg"].status == INDEXED, "an indexed row is never demoted by a plan"
    assert known["/p/b.jpg"].status == PENDING and known["/p/b.jpg"].size == 10
    assert catalog.count("c", PENDING) == 1


def test_processes_starting_together_on_a_new_database_all_open_it(tmp_path: Path) -> None:
    """Each opener checks for the table, then creates it: the losers of that race must not fail."""
    for attempt in range(5):
        url = f"sqlite:///{tmp_path / f'new{attempt}.db'}"
        start = threading.Barrier(6)

        def open_catalog(_: int) -> int:
            start.wait()
            catalog = Catalog(url)
            try:
                return catalog.count("c", status=None)
            finally:
                catalog.close()

        with ThreadPoolExecutor(6) as pool:
            assert list(pool.map(open_catalog, range(6))) == [0] * 6


OPEN_AT = """
import sys, time
from imgsearch.catalog import Catalog
start, spacing, urls = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3:]
for number, url in enumerate(urls):
    time.sleep(max(0.0, start + number * spacing - time.time()))
    Catalog(url).count("c", None)
"""


def test_processes_opening_a_new_database_at_the_same_moment_all_open_it(tmp_path: Path) -> None:
    """Switching a new SQLite file to WAL is refused at once ("database is locked", no busy wait)
    to a second process switching at the same moment; each must still open it (before the switch
    was retried, this failed in 6 runs of 6). Six processes open 30 new files together, one every
    quarter second: 30 races, and the imports paid once per process rather than once per race."""
    import subprocess
    import sys
    import time

    urls = [f"sqlite:///{tmp_path / f'shared{attempt}.db'}" for attempt in range(30)]
    start = time.time() + 2.0  # every process has imported Catalog by then
    openers = [subprocess.Popen([sys.executable, "-c", OPEN_AT, str(start), "0.25", *urls], stderr=subprocess.PIPE,
                                text=True) for _ in range(6)]
    failures = [p.communicate(timeout=60)[1] for p in openers if p.wait(timeout=60) != 0]
    assert not failures, failures[0][-500:]


def test_errors_name_the_database_without_its_password() -> None:
    with pytest.raises(CatalogError) as raised:
        Catalog("mysql+pymysql://root:s3cret@127.0.0.1:1/nowhere?connect_timeout=2")
    assert "mysql at 127.0.0.1:1/nowhere" in str(raised.value) and "s3cret" not in str(raised.value)


def test_paths_are_case_sensitive_and_unicode_safe(database_url: str) -> None:
    catalog = Catalog(database_url)
    paths = ["/p/Photo.jpg", "/p/photo.jpg", "/p/фото 😀.jpg", "/p/it's \"quoted\"; DROP TABLE images;.jpg"]
    catalog.upsert("c", [row(path) for path in paths])
    assert set(catalog.known("c")) == set(paths)
    assert catalog.by_path("c", paths[3]) is not None


def test_status_changes_and_queries(database_url: str) -> None:
    catalog = Catalog(database_url)
    catalog.upsert("c", [row(f"/d/{n}.jpg") for n in range(3)] + [row("/e/x.jpg")])
    ids = [image_id(f"/d/{n}.jpg") for n in range(3)]
    catalog.set_status("c", ids[:2], INDEXED)
    catalog.set_status("c", ids[2:], FAILED, error="truncated image")
    assert catalog.count("c") == 2
    assert catalog.failures("c") == [("/d/2.jpg", "truncated image")]
    assert catalog.get("c", ids)[ids[0]].indexed_at is not None
    assert catalog.indexed_by_sha256("c", ["a" * 64]) in ({"a" * 64: ids[0]}, {"a" * 64: ids[1]})
    assert sorted(r.path for r in catalog.under_path("c", "/d")) == [f"/d/{n}.jpg" for n in range(3)]
    assert [r.path for r in catalog.under_path("c", "/e/x.jpg")] == ["/e/x.jpg"]
    assert catalog.under_path("c", "/d/1") == [], "a prefix that is not a folder matches nothing"
    catalog.upsert("c", [row("/d0/x.jpg"), row("/d.bak/y.jpg"), row("/d/sub/é.jpg")])  # beside "/d/", and below
    assert sorted(r.path for r in catalog.under_path("c", "/d/")) == [f"/d/{n}.jpg" for n in range(3)] + ["/d/sub/é.jpg"]
    assert sorted(catalog.known("c", under="/d")) == [f"/d/{n}.jpg" for n in range(3)] + ["/d/sub/é.jpg"]
    assert sorted(catalog.known("c", ["/d0/x.jpg", "/e/x.jpg", "/nowhere.jpg"])) == ["/d0/x.jpg", "/e/x.jpg"]
    catalog.set_status("c", ids[:1], DELETING)
    assert catalog.ids_with_status("c", [DELETING]) == ids[:1]
    catalog.delete("c", ids[:1])
    catalog.drop("c")
    assert catalog.count("c", status=None) == 0


def test_thousands_of_rows_are_written_in_one_call(database_url: str) -> None:
    """More rows than SQLite binds in one statement (32,766 values: 2,731 rows of 12 columns)."""
    catalog = Catalog(database_url)
    catalog.upsert("c", [row(f"/many/{n}.jpg") for n in range(3000)])
    assert catalog.count("c", status=None) == 3000


def test_concurrent_upserts_of_the_same_rows_never_duplicate(database_url: str) -> None:
    catalog = Catalog(database_url)
    rows = [row(f"/same/{n}.jpg") for n in range(200)]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: catalog.upsert("c", rows), range(8)))
    assert catalog.count("c", status=None) == 200


def test_unreachable_database_is_one_clear_error() -> None:
    with pytest.raises(CatalogError, match="cannot reach the database"):
        Catalog("mysql+pymysql://root:@127.0.0.1:1/nope?connect_timeout=2")


# What each statement may be planned as. Reading a whole collection (`known` for a plan,
# `label_counts`) is a search by collection; only `collections()` (for /metrics) reads an index whole.
WHOLE_INDEX_READS = ("GROUP BY images.collection",)
# Where a search by a worse index would read nearly every row: (collection, status='indexed')
# matches most of a collection, so a chunk's look-up of twins must go by sha256.
# A page of the browse grid walks (collection, indexed_at, id) and stops at the page's end; by
# (collection, status) it would sort the whole collection for every page.
EXPECTED_INDEX = {"images.sha256 IN": "ix_images_collection_sha256",
                  "ORDER BY images.indexed_at DESC": "ix_images_collection_indexed_at"}


def explained(catalog: Catalog, statement: str, parameters: object) -> list[str]:
    """The plan of one statement, one line a step: SQLite's EXPLAIN QUERY PLAN, or MySQL's EXPLAIN as
    'type key' per table."""
    with catalog.engine.connect() as connection:
        if catalog.engine.dialect.name == "sqlite":
            return [row[3] for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)]
        rows = connection.exec_driver_sql("EXPLAIN " + statement, parameters).mappings().all()
        return [f"{row['type']} {row['key']}" for row in rows]


def test_every_query_of_an_index_run_and_a_search_uses_an_index(database_url: str) -> None:
    """Item 4 of issue 24: on a collection of 20,000 rows beside another one, no statement the catalog sends
    for a plan, a chunk, a search's join, a count, a delete or the seed's /data scans the table (before,
    indexed_by_sha256 searched by (collection, status), which nearly every row matches, once per chunk,
    and find_indexed_path read every row)."""
    from sqlalchemy import event

    catalog = Catalog(database_url)
    for collection, count in (("big", 20_000), ("other", 5_000)):
        catalog.upsert(collection, [row(f"/{collection}/{n // 1000}/{n}.jpg", INDEXED if n % 50 else FAILED,
                                        sha256=f"{n:064x}") for n in range(count)])
    if catalog.engine.dialect.name != "sqlite":
        with catalog.engine.begin() as connection:
            connection.exec_driver_sql("ANALYZE TABLE images")
    sent: list[tuple[str, object]] = []

    def remember(_connection: object, _cursor: object, statement: str, parameters: object, *_: object) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            sent.append((statement, parameters))

    event.listen(catalog.engine, "before_cursor_execute", remember)
    ids = [image_id(f"/big/3/{n}.jpg") for n in range(3000, 3500)]
    catalog.known("big")
    catalog.known("big", under="/big/3")
    catalog.known("big", [f"/big/3/{n}.jpg" for n in range(3000, 3500)])
    catalog.get("big", ids)
    catalog.indexed_by_sha256("big", [f"{n:064x}" for n in range(3000, 3500)])
    catalog.by_path("big", "/big/3/3001.jpg")
    catalog.under_path("big", "/big/3")
    catalog.ids_with_status("big", [DELETING])
    catalog.count("big")
    catalog.status_counts("big")
    catalog.failures("big")
    catalog.label_counts("big")
    catalog.find_indexed_path("/big/3/3001.jpg")
    catalog.collections()
    first = browse(catalog, "big", limit=60)  # the web page's grid: a keyset page newest first
    browse(catalog, "big", limit=60, after=first.next)
    browse(catalog, "big", limit=60, folder="/big/3")
    event.remove(catalog.engine, "before_cursor_execute", remember)
    assert len(sent) >= 17
    scanning = []
    for statement, parameters in sent:
        plan = explained(catalog, statement, parameters)
        if any(part in statement for part in WHOLE_INDEX_READS):
            continue
        if catalog.engine.dialect.name == "sqlite":
            scans = [step for step in plan if step.startswith("SCAN")]
        else:
            scans = [step for step in plan if step.split()[0] in ("ALL", "index") or step.endswith(" None")]
        scans += [f"not by {index}" for part, index in EXPECTED_INDEX.items()
                  if part in statement and index not in " ".join(plan)]
        if scans:
            scanning.append(f"{' '.join(statement.split()).split(' FROM ')[1][:200]} -> {plan}")
    assert not scanning, "\n".join(scanning)


def test_a_catalog_made_before_an_index_existed_gets_it_when_opened(database_url: str) -> None:
    from sqlalchemy import inspect

    catalog = Catalog(database_url)
    catalog.upsert("c", [row("/old/a.jpg", INDEXED)])
    with catalog.engine.begin() as connection:
        connection.exec_driver_sql("DROP INDEX ix_images_path" + ("" if catalog.engine.dialect.name == "sqlite"
                                                                   else " ON images"))
    assert "ix_images_path" not in {index["name"] for index in inspect(catalog.engine).get_indexes("images")}
    catalog.close()
    reopened = Catalog(database_url)
    assert "ix_images_path" in {index["name"] for index in inspect(reopened.engine).get_indexes("images")}
    assert reopened.find_indexed_path("/old/a.jpg") is not None
