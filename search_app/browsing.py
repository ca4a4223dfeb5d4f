"""Browsing a collection over HTTP: its images newest first, a keyset page at a time,
filtered by label or folder (`/api/collections/{name}/images`), for the web page's grid."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from imgsearch.browse import browse
from imgsearch.catalog import ImageRecord, utc_iso
from imgsearch.collection import exists
from search_app import params
from search_app.api import links, services
from search_app.errors import ApiError


def image_json(record: ImageRecord) -> dict[str, Any]:
    return {"id": record.id, "path": record.path, "labels": list(record.labels or []), "folder": record.folder,
            "width": record.width, "height": record.height, "size": record.size,
            "indexed_at": utc_iso(record.indexed_at),
            **links(record.id, record.collection)}


async def collection_images(request: Request) -> Response:
    svc = services(request)
    name = params.COLLECTION_IN_PATH.parse(request.path_params["name"])
    query = request.query_params
    limit, after = params.PAGE_LIMIT.parse(query), params.PAGE_AFTER.parse(query)
    label, folder = params.LABEL.parse(query), params.FOLDER.parse(query)
    stores = await run_in_threadpool(svc.stores)
    page = await run_in_threadpool(lambda: browse(stores.catalog, name, limit=limit, after=after, label=label,
                                                  folder=folder))  # a bad cursor: BadInput, 400
    if not page.images and after is None and not await run_in_threadpool(exists, stores, name):
        raise ApiError(404, f"no collection named {name!r}")
    return JSONResponse({"collection": name, "images": [image_json(record) for record in page.images],
                         "next": page.next})


ROUTES = [Route("/api/collections/{name}/images", collection_images, methods=["GET"])]
