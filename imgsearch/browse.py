"""Browsing a collection without a query: its indexed images newest first, a page at a
time, of one label or under one folder if asked, and the folders it holds.

Pages are keyset pages: a cursor names the last image shown (when it was indexed, and
its id), and the next page starts right after it by the index (collection, indexed_at,
id). Page 10,000 of a million images then costs what page 1 does; an OFFSET would read
and throw away every row before it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, exists, func, literal, or_, select

from imgsearch.catalog import INDEXED, Catalog, ImageRecord, database_errors
from imgsearch.errors import BadInput

MOST_PER_PAGE = 500
MOST_FOLDERS = 500  # folders listed for a filter, the fullest first


@dataclass(frozen=True)
class Page:
    images: list[ImageRecord]
    next: str | None  # the cursor of the page after this one; None on the last page


EPOCH = datetime(1970, 1, 1)
# '<microseconds since 1970 (UTC)>-<id>': digits only, so that every cursor of this form is one
# (17 digits reach past the year 5000; 18 keep an id inside a signed 64-bit column).
CURSOR = re.compile(r"^([0-9]{1,17})-([0-9]{1,18})$")


def cursor_of(record: ImageRecord) -> str:
    """What the next page starts after: when the last image shown was indexed, and its id."""
    assert record.indexed_at is not None
    moment = record.indexed_at.replace(tzinfo=None)  # the databases hand back naive UTC
    return f"{(moment - EPOCH) // timedelta(microseconds=1)}-{record.id}"


def parse_cursor(cursor: str) -> tuple[datetime, int]:
    found = CURSOR.match(cursor)
    if found is None:
        raise BadInput(f"not a page cursor: {cursor[:80]!r} (give the 'next' of the page before)")
    return EPOCH + timedelta(microseconds=int(found[1])), int(found[2])


def browse(catalog: Catalog, collection: str, *, limit: int = 60, after: str | None = None,
           label: str | None = None, folder: str | None = None) -> Page:
    """Indexed images of `collection`, the most recently indexed first, `limit` of them after
    the cursor `after`; only those carrying `label`, or lying at or below `folder`, if given."""
    if not 1 <= limit <= MOST_PER_PAGE:
        raise BadInput(f"limit must be from 1 to {MOST_PER_PAGE}, got {limit}")
    conditions: list[ColumnElement[bool]] = [
        ImageRecord.collection == collection, ImageRecord.status == INDEXED, ImageRecord.indexed_at.is_not(None)]
    if after:
        moment, last_id = parse_cursor(after)
        conditions.append(or_(ImageRecord.indexed_at < moment,
                              and_(ImageRecord.indexed_at == moment, ImageRecord.id < last_id)))
    if label:
        conditions.append(_has_label(catalog, label))
    if folder:
        conditions.append(_in_folder(folder))
    query = (select(ImageRecord).where(*conditions)
             .order_by(ImageRecord.indexed_at.desc(), ImageRecord.id.desc()).limit(limit + 1))
    with database_errors(catalog.where, "read records"), catalog.session() as session:
        found = list(session.scalars(query))
    shown = found[:limit]
    return Page(shown, cursor_of(shown[-1]) if len(found) > limit else None)


def folder_counts(catalog: Catalog, collection: str, most: int = MOST_FOLDERS) -> dict[str, int]:
    """Indexed images per folder (the folder an image lies in), the fullest first."""
    query = (select(ImageRecord.folder, func.count()).where(
        ImageRecord.collection == collection, ImageRecord.status == INDEXED).group_by(ImageRecord.folder))
    with database_errors(catalog.where, "read records"), catalog.engine.connect() as connection:
        counts = {str(folder): int(number) for folder, number in connection.execute(query)}
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:most])


def _has_label(catalog: Catalog, label: str) -> ColumnElement[bool]:
    """The JSON list of labels holds `label`: SQLite's json_each, MySQL's JSON_CONTAINS."""
    if catalog.engine.dialect.name == "sqlite":
        labels = func.json_each(ImageRecord.labels).table_valued("value")
        return exists(select(literal(1)).select_from(labels).where(labels.c.value == label))
    return func.json_contains(ImageRecord.labels, func.json_quote(label)) == 1


def _in_folder(folder: str) -> ColumnElement[bool]:
    """The image lies in `folder` or in a folder below it."""
    top = folder.rstrip("/") or "/"
    below = top.rstrip("/") + "/"
    return or_(ImageRecord.folder == top, func.substr(ImageRecord.folder, 1, len(below)) == below)
