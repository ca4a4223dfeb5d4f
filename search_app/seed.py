"""Routes of the Milvus bootcamp server, so its web client and scripts keep working.

Same paths, parameters, response shapes and timing as a seed client sees them:
`/img/load` answers "Successfully loaded data!" once the folder is loaded, and
`/progress` follows the run meanwhile. What changes is behaviour behind them:
the load is a Prefect flow run of retryable chunks executing in the background
(a client that disconnects does not stop it; `?wait=false` returns at once),
`/img/search` returns exactly `topk` rows, `/data` serves only indexed images,
and errors are 4xx/503 JSON instead of `200 [{"status": false}, 400]`.
The seed's distance was squared L2 between unit vectors; it is returned the
same way (2 - 2·cosine), smallest first.
"""

from __future__ import annotations

import hashlib
import io
import os

import anyio
from PIL import Image
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from imgsearch.collection import drop as drop_collection
from imgsearch.decode import EXTENSIONS, decode_image
from imgsearch.discover import canonical_path, discover
from imgsearch.indexing import index_chunk
from search_app import params
from search_app.api import encode_upload, query_and_form, run_request, read_upload, search_vector, services
from search_app.auth import require_api_key
from search_app.errors import ApiError
from search_app.files import SAFE_HEADERS, media_type, servable_path


LOAD_POLL_SECONDS = 0.2


def table(request: Request) -> str:
    return params.SEED_TABLE.parse(request.query_params, services(request).settings.default_table)


async def load(request: Request) -> Response:
    svc = services(request)
    path, collection = await run_request(request, params.SEED_FILE, params.SEED_BODY_TABLE)
    wait = params.WAIT.parse(request.query_params, True)
    status = await run_in_threadpool(svc.runs.start, path, collection)
    location = {"Location": f"/api/index/{status.run_id}"}
    if not wait:
        return JSONResponse(f"Started loading data: run {status.run_id}; see /progress",
                            status_code=202, headers=location)
    # The run executes in a thread of its own; this request only waits for it,
    # so a client that goes away does not stop the load.
    while status.finished_at is None:
        await anyio.sleep(LOAD_POLL_SECONDS)
    if status.state != "COMPLETED":
        raise ApiError(503, f"loading {path} did not finish ({status.state}): {status.error}; "
                            f"what was loaded is kept, load again to finish")
    return JSONResponse("Successfully loaded data!", headers=location)


async def upload(request: Request) -> Response:
    """Store the uploaded image under DATA_DIR/uploads (named by content) and index it."""
    svc = services(request)
    require_api_key(request, svc.settings.api_key)
    if request.query_params.get("url"):
        raise ApiError(400, "uploads by URL are not fetched by this server; send the image itself")
    data, _ = await read_upload(request)
    await run_in_threadpool(decode_image, data)  # refuse non-images before storing anything
    collection = table(request)
    target = svc.settings.data_dir / "uploads" / f"{hashlib.sha256(data).hexdigest()}{_extension(data)}"
    await run_in_threadpool(_write_once, target, data)
    catalog, vectors = await run_in_threadpool(svc.catalog), await run_in_threadpool(svc.vectors)
    assert svc.encoder is not None
    images = discover(target).images
    report = await run_in_threadpool(
        lambda: index_chunk(images, collection, catalog, vectors, svc.encoder)  # type: ignore[arg-type]
    )
    if report.failed:
        raise ApiError(422, report.failed[0][1])
    record = await run_in_threadpool(catalog.by_path, collection, canonical_path(target))
    return JSONResponse(f"Successfully loaded data: {record.id if record else ''}")


def _extension(data: bytes) -> str:
    """The file extension of the image's real format (the client's file name is not trusted)."""
    with Image.open(io.BytesIO(data)) as image:
        extension = f".{(image.format or 'jpeg').lower()}".replace(".jpeg", ".jpg")
    if extension not in EXTENSIONS:
        raise ApiError(415, f"{extension[1:].upper()} images are not indexed; send JPEG, PNG, BMP, WebP or GIF")
    return extension


def _write_once(target: os.PathLike[str], data: bytes) -> None:
    path = os.fspath(target)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if not os.path.exists(path):
        partial = f"{path}.{os.getpid()}.part"
        with open(partial, "wb") as handle:
            handle.write(data)
        os.replace(partial, path)


async def search(request: Request) -> Response:
    svc = services(request)
    data, fields = await read_upload(request)
    values = query_and_form(request, fields, lambda given: params.SEED_TOP_K.parse(given, svc.settings.top_k),
                            params.MIN_SCORE.parse)
    top_k = params.SEED_TOP_K.parse(values, svc.settings.top_k)
    min_score = params.MIN_SCORE.parse(values)
    vector = await encode_upload(svc, data)
    assert svc.batcher is not None
    results = await search_vector(svc, vector, table(request), top_k, None, encoder=svc.batcher.encoder.name,
                                  min_score=min_score)
    return JSONResponse([[r.path, round(max(0.0, 2.0 - 2.0 * r.score), 6)] for r in results])


async def count(request: Request) -> Response:
    svc = services(request)
    catalog = await run_in_threadpool(svc.catalog)
    return JSONResponse(await run_in_threadpool(catalog.count, table(request)))


async def drop(request: Request) -> Response:
    svc = services(request)
    require_api_key(request, svc.settings.api_key)
    collection = table(request)
    # The seed answered success for a table that did not exist; its clients rely on that.
    await run_in_threadpool(drop_collection, await run_in_threadpool(svc.stores), collection, missing_ok=True)
    return JSONResponse("Successfully drop tables in Milvus and MySQL!")


async def progress(request: Request) -> Response:
    latest = services(request).runs.registry.latest()
    if latest is None:
        return JSONResponse("current: 0, total: 0")
    return JSONResponse(f"current: {latest.processed}, total: {latest.total or 0}")


async def data(request: Request) -> Response:
    """`/data?image_path=`: only a path that is indexed is served; anything else is 404."""
    raw = request.query_params.get("image_path", "")
    if not raw or "\x00" in raw:
        raise ApiError(404, "no indexed image at that path")
    catalog = await run_in_threadpool(services(request).catalog)
    # The client's path only selects a record; what is served is the record's own path.
    record = await run_in_threadpool(catalog.find_indexed_path, canonical_path(raw))
    if record is None:
        raise ApiError(404, "no indexed image at that path")
    path = servable_path(record)
    return FileResponse(path, media_type=media_type(path), headers=SAFE_HEADERS)


ROUTES = [
    Route("/img/load", load, methods=["POST"]),
    Route("/img/upload", upload, methods=["POST"]),
    Route("/img/search", search, methods=["POST"]),
    Route("/img/count", count, methods=["POST"]),
    Route("/img/drop", drop, methods=["POST"]),
    Route("/progress", progress, methods=["GET"]),
    Route("/data", data, methods=["GET"]),
]
