"""Resolving a duplicate group: keep one image and take the others out of the index,
moving their files into a folder the user names if asked. A file is deleted from disk
only when asked in so many words (`delete_files`).

What a resolution takes out (each record and its stored vector) stays in the
`Resolution` it returns, so `undo` can put the files back where they were and the
records and vectors back in the stores as they were, without embedding anything again.
A resolution that deleted files cannot be undone.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from imgsearch.catalog import INDEXED, PENDING
from imgsearch.collection import Stores, delete
from imgsearch.errors import BadInput, NotFound

MOST_REMOVED = 1000  # images one resolution takes out


@dataclass(frozen=True)
class Removed:
    """One image a resolution took out, and where its file went."""

    record: dict[str, Any]  # the catalog row, as Catalog.upsert takes it
    vector: np.ndarray | None
    moved_to: str | None = None
    deleted: bool = False
    error: str | None = None  # the file could not be moved or deleted (it stays where it was)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.record["id"], "path": self.record["path"], "moved_to": self.moved_to,
                "deleted": self.deleted, "error": self.error}


@dataclass
class Resolution:
    collection: str
    keep: int
    keep_path: str
    removed: list[Removed] = field(default_factory=list)
    dry_run: bool = False

    @property
    def undoable(self) -> bool:
        return not self.dry_run and not any(image.deleted for image in self.removed)

    def as_dict(self) -> dict[str, Any]:
        return {"collection": self.collection, "keep": {"id": self.keep, "path": self.keep_path},
                "removed": [image.as_dict() for image in self.removed], "dry_run": self.dry_run,
                "undoable": self.undoable}


def resolve(stores: Stores, collection: str, keep: int, remove: list[int], *, move_to: str | None = None,
            delete_files: bool = False, dry_run: bool = False) -> Resolution:
    """Keep `keep`, take `remove` out of `collection`; move their files into the folder `move_to`
    (made if missing) or delete them if `delete_files`. `dry_run` checks and says what it would do."""
    remove = list(dict.fromkeys(remove))
    if not remove:
        raise BadInput("give at least one image to remove")
    if len(remove) > MOST_REMOVED:
        raise BadInput(f"at most {MOST_REMOVED} images to remove at once, got {len(remove)}")
    if keep in remove:
        raise BadInput(f"image {keep} is both kept and removed")
    if move_to is not None and delete_files:
        raise BadInput("either move the files or delete them, not both")
    records = stores.catalog.get(collection, [keep, *remove])
    missing = [image for image in [keep, *remove] if image not in records or records[image].status != INDEXED]
    if missing:
        raise NotFound(f"no indexed image with id {missing[0]} in {collection!r}")
    target = _target_folder(move_to) if move_to is not None else None
    resolution = Resolution(collection, keep, records[keep].path, dry_run=dry_run)
    if dry_run:
        taken: set[str] = set()
        resolution.removed = [Removed(records[image].as_row(), None, _free_name(target, records[image].path, taken)
                                      if target else None, delete_files) for image in remove]
        return resolution
    vectors = stores.vectors.vectors(collection, remove)
    delete(stores, collection, remove)  # out of the index first: a failed move then loses nothing
    for image in remove:
        record = records[image]
        resolution.removed.append(_dispose(record.as_row(), vectors.get(image), target, delete_files))
    return resolution


def undo(stores: Stores, resolution: Resolution) -> int:
    """Put a resolution's files back and its records and vectors back in the stores, the row
    first as pending and marked indexed after its vector (the order an index run writes in)."""
    if not resolution.undoable:
        raise BadInput("this resolution deleted files (or was a dry run): it cannot be undone")
    moves = [(image.moved_to, image.record["path"]) for image in resolution.removed
             if image.moved_to and os.path.exists(image.moved_to)]  # one moved back already is skipped
    taken = [original for _, original in moves if os.path.exists(original)]
    if taken:  # checked before any file moves, so a refused undo changes nothing
        raise BadInput(f"cannot move files back: {taken[0]} exists again" +
                       (f" (and {len(taken) - 1} more)" if len(taken) > 1 else ""))
    for moved_to, original in moves:
        Path(original).parent.mkdir(parents=True, exist_ok=True)
        shutil.move(moved_to, original)
    restorable = [(image.record, image.vector) for image in resolution.removed if image.vector is not None]
    if not restorable:  # none had a vector to restore
        return 0
    rows = [row for row, _ in restorable]
    stores.catalog.upsert(resolution.collection, [{**row, "status": PENDING} for row in rows])
    stores.vectors.upsert(resolution.collection, [row["id"] for row in rows],
                          np.stack([vector for _, vector in restorable]),
                          [row["labels"] for row in rows], [row["folder"] for row in rows])
    stores.catalog.upsert(resolution.collection, rows)
    return len(rows)


def _target_folder(move_to: str) -> Path:
    folder = Path(move_to).expanduser()
    if not folder.is_absolute():
        raise BadInput(f"move_to must be an absolute folder, got {move_to!r}")
    if folder.exists() and not folder.is_dir():
        raise BadInput(f"move_to is not a folder: {move_to}")
    return folder


def _free_name(folder: Path, path: str, taken: set[str] | None = None) -> str:
    """`folder/<name>`, or `folder/<stem>-2<suffix>` and so on when that is taken (on disk, or in
    `taken`, the names a dry run has handed out)."""
    original = Path(path)
    candidate, number = folder / original.name, 1
    while candidate.exists() or (taken is not None and str(candidate) in taken):
        number += 1
        candidate = folder / f"{original.stem}-{number}{original.suffix}"
    if taken is not None:
        taken.add(str(candidate))
    return str(candidate)


def _dispose(row: dict[str, Any], vector: np.ndarray | None, target: Path | None, delete_files: bool) -> Removed:
    """Move or delete one removed image's file; a failure is reported, never raised (the image is
    already out of the index, its file stays where it was)."""
    path = row["path"]
    try:
        if target is not None:
            target.mkdir(parents=True, exist_ok=True)
            destination = _free_name(target, path)
            shutil.move(path, destination)
            return Removed(row, vector, moved_to=destination)
        if delete_files:
            os.remove(path)
            return Removed(row, vector, deleted=True)
    except OSError as error:
        return Removed(row, vector, error=f"{error.strerror or error}: {path}")
    return Removed(row, vector)
