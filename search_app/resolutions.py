"""Acting on a duplicate group over HTTP: keep one image, take the others out of the
index (their files moved into a folder, or deleted only when asked), and undo that
within the session (`resolution_store`)."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from imgsearch.discover import canonical_path
from imgsearch.resolve import MOST_REMOVED, resolve, undo
from search_app import params
from search_app.api import json_body, services
from search_app.auth import require_api_key
from search_app.errors import ApiError


def _image_id(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**params.ID_BITS:
        raise ApiError(422, f"{name} must be image ids (integers), got {str(value)[:40]!r}")
    return value


def _flag(body: dict[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise ApiError(422, f"{name} must be true or false")
    return value


def _move_to(body: dict[str, Any], roots: list[str]) -> str | None:
    """The folder to move files into: absolute, and inside INDEX_ROOTS when that is set."""
    raw = body.get("move_to")
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str) or "\x00" in raw or not raw.startswith("/"):
        raise ApiError(422, "move_to must be an absolute folder on the server")
    folder = canonical_path(raw)
    params.require_within_roots(folder, roots, "move_to")
    return folder


async def resolve_group(request: Request) -> Response:
    svc = services(request)
    name = params.COLLECTION_IN_PATH.parse(request.path_params["name"])
    require_api_key(request, svc.settings.api_key)
    body = await json_body(request)
    dry_run = _flag(body, "dry_run")
    keep = _image_id(body.get("keep"), "keep")
    remove = body.get("remove")
    if not isinstance(remove, list) or not 1 <= len(remove) <= MOST_REMOVED:
        raise ApiError(422, f"remove must be a list of 1 to {MOST_REMOVED} image ids")
    remove_ids = [_image_id(value, "remove") for value in remove]
    move_to, delete_files = _move_to(body, svc.settings.index_roots), _flag(body, "delete_files")
    stores = await run_in_threadpool(svc.stores)
    resolution = await run_in_threadpool(lambda: resolve(stores, name, keep, remove_ids, move_to=move_to,
                                                         delete_files=delete_files, dry_run=dry_run))
    answer = resolution.as_dict()
    answer["undo_url"] = (f"/api/resolutions/{svc.resolutions.keep(resolution)}/undo"
                          if resolution.undoable else None)
    return JSONResponse(answer)


async def undo_resolution(request: Request) -> Response:
    svc = services(request)
    require_api_key(request, svc.settings.api_key)
    token = request.path_params["token"]
    resolution = svc.resolutions.take(token)
    if resolution is None:
        raise ApiError(404, "no such resolution to undo here (already undone, forgotten, or made by "
                            "another server process)")
    stores = await run_in_threadpool(svc.stores)
    try:
        restored = await run_in_threadpool(undo, stores, resolution)
    except Exception:
        svc.resolutions.put_back(token, resolution)  # a failed undo can be tried again
        raise
    return JSONResponse({"collection": resolution.collection, "restored": restored})


ROUTES = [
    Route("/api/collections/{name}/duplicates/resolve", resolve_group, methods=["POST"]),
    Route("/api/resolutions/{token}/undo", undo_resolution, methods=["POST"]),
]
