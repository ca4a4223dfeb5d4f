"""Names Prefect shows: flow runs ("index photos into voc") and artifact keys, which
Prefect allows only in lowercase letters, digits and dashes, at most 100 characters."""

from __future__ import annotations

import os


def run_name(verb: str, path: str, collection: str, changed: int = 0) -> str:
    """"index photos into voc"; a watcher's batch: "watch photos (3 changed) into voc"."""
    where = os.path.basename(str(path).rstrip("/")) or "/"
    return f"{verb} {where}{f' ({changed} changed)' if changed else ''} into {collection}"


def artifact_key(kind: str, collection: str) -> str:
    """`index-summary`, `index-failures`, `sync-summary` ... of one collection."""
    return f"{kind}-{collection.lower().replace('_', '-')}"[:100]
