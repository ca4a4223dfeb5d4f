"""`imgsearch duplicates`: list groups of copies, or resolve them (`--resolve`): keep each
group's suggested image and take the others out of the index, their files moved into a
folder (`--move-to`) or deleted (`--delete-files`) only when asked. A resolve lists what it
would do and changes nothing until it is run again with `--apply`."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from cli.commands import _collection, _stores, print_json, progress_bar
from imgsearch.errors import UsageError

if TYPE_CHECKING:
    from imgsearch.duplicates import DuplicateGroup
    from imgsearch.resolve import Resolution


def duplicates(arguments: argparse.Namespace) -> int:
    from imgsearch.duplicates import DEFAULT_MIN_SCORE, duplicate_groups

    if (arguments.move_to or arguments.delete_files or arguments.apply) and not arguments.resolve:
        raise UsageError("--move-to, --delete-files and --apply go with --resolve")
    if arguments.move_to and arguments.delete_files:
        raise UsageError("either --move-to a folder or --delete-files, not both")
    name, both = _collection(arguments), _stores()
    min_score = DEFAULT_MIN_SCORE if arguments.min_score is None else arguments.min_score
    # Stages in turn: reading vectors, then (past 20,000) learning lists and partitioning, comparing.
    with progress_bar(not arguments.json and sys.stderr.isatty()) as progress:
        groups = duplicate_groups(name, both.vectors, both.catalog, min_score, progress=progress)
    if arguments.resolve:
        return _resolve(arguments, name, groups)
    if arguments.json:
        print_json({"collection": name, "min_score": min_score, "groups": [g.as_dict() for g in groups]})
        return 0
    if not groups:
        print(f"no duplicates in {name} at min score {min_score:g}")
    for number, group in enumerate(groups, start=1):
        print(f"group {number}: {len(group.images)} images, similarity >= {group.score:.4f}")
        for image in group.images:
            size = f"{image.width}x{image.height}" if image.width else "?"
            print(f"  {image.score:.4f}  {size:>9}  {image.path}")
    return 0


def _resolve(arguments: argparse.Namespace, name: str, groups: list[DuplicateGroup]) -> int:
    """Each group: keep its first image (the most pixels, then the most bytes), remove the rest."""
    from imgsearch.resolve import resolve

    both, dry_run = _stores(), not arguments.apply
    move_to = str(arguments.move_to.expanduser().absolute()) if arguments.move_to else None
    done: list[Resolution] = []
    for group in groups:
        keep, *others = (image.id for image in group.images)
        done.append(resolve(both, name, keep, others, move_to=move_to, delete_files=arguments.delete_files,
                            dry_run=dry_run))
    if arguments.json:
        print_json({"collection": name, "dry_run": dry_run, "resolutions": [r.as_dict() for r in done]})
        return 0
    removed = sum(len(resolution.removed) for resolution in done)
    for number, resolution in enumerate(done, start=1):
        print(f"group {number}: keep {resolution.keep_path}")
        for image in resolution.removed:
            fate = (f"moved to {image.moved_to}" if image.moved_to else "deleted" if image.deleted
                    else "file left in place")
            if image.error:
                fate = f"file not moved: {image.error}"
            print(f"  {'would remove' if dry_run else 'removed'} {image.record['path']} ({fate})")
    where = (f", their files moved into {move_to}" if move_to else
             ", their files DELETED from disk" if arguments.delete_files else ", their files left in place")
    if dry_run:
        print(f"dry run: {removed} images in {len(done)} groups would be removed from {name}{where}; "
              f"nothing changed. Run again with --apply to do it.")
    else:
        print(f"removed {removed} images in {len(done)} groups from {name}{where}")
    return 0
