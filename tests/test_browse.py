"""Browsing a collection newest first, a keyset page at a time, on SQLite and MariaDB."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from imgsearch.browse import browse, folder_counts
from imgsearch.catalog import FAILED, INDEXED, Catalog
from imgsearch.errors import BadInput
from tests.test_catalog import row

START = datetime(2026, 1, 1, tzinfo=UTC)


def fill(catalog: Catalog) -> list[str]:
    """45 indexed images in three folders, labelled by a cycle of three labels, indexed a second
    apart except five that share one second (ties broken by id); a failed one and another
    collection's. Returns the indexed paths, newest first."""
    rows = []
    for n in range(45):
        moment = START + timedelta(seconds=min(n, 40))  # 40..44 share a second
        rows.append(row(f"/lib/{'abc'[n % 3]}/{n}.jpg", INDEXED, indexed_at=moment,
                        labels=[["cat"], ["dog"], ["cat", "tree"]][n % 3]))
    catalog.upsert("c", rows)
    catalog.upsert("c", [row("/lib/a/broken.jpg", FAILED, indexed_at=START + timedelta(days=1))])
    catalog.upsert("other", [row("/lib/a/0.jpg", INDEXED, indexed_at=START + timedelta(days=1))])
    order = sorted(rows, key=lambda r: (r["indexed_at"], r["id"]), reverse=True)
    return [str(r["path"]) for r in order]


def every_page(catalog: Catalog, limit: int, **filters: str) -> list[list[str]]:
    pages, after = [], None
    while True:
        page = browse(catalog, "c", limit=limit, after=after, **filters)
        pages.append([record.path for record in page.images])
        if page.next is None:
            return pages
        after = page.next


def test_pages_walk_the_collection_newest_first_once(database_url: str) -> None:
    catalog = Catalog(database_url)
    newest_first = fill(catalog)
    pages = every_page(catalog, 7)
    assert [path for page in pages for path in page] == newest_first  # ties at one second included
    assert [len(page) for page in pages] == [7] * 6 + [3]
    assert every_page(catalog, 45) == [newest_first]  # exactly one page: no empty page after it


def test_a_label_or_a_folder_narrows_the_pages(database_url: str) -> None:
    catalog = Catalog(database_url)
    newest_first = fill(catalog)
    cats = [p for p in newest_first if int(p.rsplit("/", 1)[1][:-4]) % 3 in (0, 2)]
    assert [p for page in every_page(catalog, 4, label="cat") for p in page] == cats
    assert [p for page in every_page(catalog, 4, label="tree") for p in page] == [p for p in newest_first
                                                                                 if "/c/" in p]
    assert every_page(catalog, 4, label="ca") == [[]]  # a label, not a substring
    assert [p for page in every_page(catalog, 5, folder="/lib/b") for p in page] == [p for p in newest_first
                                                                                    if "/b/" in p]
    assert len([p for page in every_page(catalog, 50, folder="/lib/") for p in page]) == 45  # and below
    assert every_page(catalog, 5, folder="/li") == [[]]  # a folder, not a prefix of a name
    assert folder_counts(catalog, "c") == {"/lib/a": 15, "/lib/b": 15, "/lib/c": 15}


def test_bad_pages_are_refused(database_url: str) -> None:
    catalog = Catalog(database_url)
    with pytest.raises(BadInput, match="not a page cursor"):
        browse(catalog, "c", after="yesterday~x")
    with pytest.raises(BadInput, match="limit must be from 1 to 500"):
        browse(catalog, "c", limit=0)
    assert browse(catalog, "nothing").images == []
