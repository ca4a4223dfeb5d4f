"""The JSON API under `/api`."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Collection
from typing import Any

import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.endpoints import HTTPEndpoint
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from imgsearch.browse import folder_counts
from imgsearch.collection import counts as collection_counts
from imgsearch.collection import delete as delete_from_both
from imgsearch.collection import drop as drop_from_both
from imgsearch.duplicates import DEFAULT_MIN_SCORE, DuplicateGroup, duplicate_groups
from imgsearch import searching
from imgsearch.expansion import QueryExpansion
from imgsearch.searching import QUERY_BATCH, Result, decode_queries, nearest_each
from search_app import params
from search_app.auth import require_api_key
from search_app.errors import ApiError
from search_app.files import SAFE_HEADERS, media_type, servable_path
from search_app.services import Services


def services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def links(image_id: int, collection: str) -> dict[str, str]:
    """Where a client gets an indexed image and its thumbnail."""
    suffix = f"?collection={collection}"
    return {"image_url": f"/api/images/{image_id}/file{suffix}",
            "thumbnail_url": f"/api/images/{image_id}/thumbnail{suffix}"}


def result_json(result: Result, collection: str) -> dict[str, Any]:
    return {"id": result.id, "path": result.path, "score": round(result.score, 6), "labels": result.labels,
            **links(result.id, collection)}


def group_json(group: DuplicateGroup, collection: str) -> dict[str, Any]:
    body = group.as_dict()
    body["images"] = [{**image, **links(image["id"], collection)} for image in body["images"]]
    return body


MAX_QUERY_IMAGES = QUERY_BATCH  # per /api/search request: one forward pass of the query batcher


async def read_uploads(request: Request, field: str = "image",
                       most: int = 1) -> tuple[list[tuple[str, bytes]], dict[str, str]]:
    """The uploaded files of `field` as (file name, bytes) in their order, and the form's
    text fields; 400/413/415 when absent, too many or not a form."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise ApiError(415, f"send multipart/form-data with the image in the field {field!r}")
    form = await request.form(max_files=most + 1, max_fields=20)
    try:
        uploads = [value for value in form.getlist(field) if isinstance(value, UploadFile)]
        fields = {key: value for key, value in form.items() if isinstance(value, str)}
        if not uploads:
            raise ApiError(400, f"no file in the multipart field {field!r}")
        if len(uploads) > most:
            raise ApiError(413, f"at most {most} image{'s' if most > 1 else ''} per request, "
                                f"got more in the field {field!r}")
        files = [(upload.filename or f"image {number}", await upload.read())
                 for number, upload in enumerate(uploads, start=1)]
    finally:
        await form.close()
    return files, fields


async def read_upload(request: Request, field: str = "image") -> tuple[bytes, dict[str, str]]:
    """The one uploaded file's bytes and the form's text fields."""
    files, fields = await read_uploads(request, field)
    return files[0][1], fields


def query_and_form(request: Request, fields: dict[str, str],
                   *checks: Callable[[params.Values], object]) -> dict[str, object]:
    """A value may come in the query or the form (the form wins); each given one must pass
    `checks` wherever it was sent."""
    for given in (request.query_params, fields):
        for check in checks:
            check(given)
    return {**request.query_params, **fields}


async def search_vectors(
    svc: Services, queries: np.ndarray, collection: str, top_k: int, label: str | None, *,
    exclude: Collection[int] = (), encoder: str | None = None, min_score: float | None = None,
    expand: int | None = None,
) -> list[list[Result]]:
    """The nearest indexed images of each query vector, in their order. `encoder`: the one
    that made the vectors (None: vectors of the collection itself); `expand`: αQE's answers
    (None: QUERY_EXPANSION)."""
    expansion = QueryExpansion.chosen(expand, svc.settings)
    vectors, catalog = await run_in_threadpool(svc.vectors), await run_in_threadpool(svc.catalog)
    if not await run_in_threadpool(vectors.exists, collection):
        raise ApiError(404, f"no collection named {collection!r}")
    return await run_in_threadpool(
        lambda: nearest_each(queries, collection, top_k, vectors, catalog, label=label, exclude=exclude,
                             encoder=encoder, min_score=min_score, expansion=expansion)
    )


async def search_vector(
    svc: Services, vector: np.ndarray, collection: str, top_k: int, label: str | None, *,
    exclude: Collection[int] = (), encoder: str | None = None, min_score: float | None = None,
) -> list[Result]:
    return (await search_vectors(svc, vector[np.newaxis], collection, top_k, label, exclude=exclude,
                                 encoder=encoder, min_score=min_score))[0]


async def encode_upload(svc: Services, data: bytes) -> np.ndarray:
    assert svc.batcher is not None
    (pixels,) = await run_in_threadpool(decode_queries, [("image", data)], svc.batcher.encoder.input_size)
    return await svc.batcher.embed(pixels)


async def search(request: Request) -> Response:
    """Search by one uploaded image, or several (one model batch, answers in their order);
    `Server-Timing` says where the time went."""
    marks = [("start", time.perf_counter())]
    svc = services(request)
    files, fields = await read_uploads(request, most=MAX_QUERY_IMAGES)
    values = query_and_form(request, fields, lambda given: params.TOP_K.parse(given, svc.settings.top_k),
                            lambda given: params.COLLECTION.parse(given, svc.settings.default_table),
                            params.LABEL.parse, params.MIN_SCORE.parse,
                            lambda given: params.EXPAND.parse(given, svc.settings.query_expansion))
    top_k = params.TOP_K.parse(values, svc.settings.top_k)
    collection = params.COLLECTION.parse(values, svc.settings.default_table)
    label = params.LABEL.parse(values)
    min_score = params.MIN_SCORE.parse(values)
    expand = params.EXPAND.parse(values, svc.settings.query_expansion)
    marks.append(("upload", time.perf_counter()))
    assert svc.batcher is not None
    pixels = await run_in_threadpool(decode_queries, files, svc.batcher.encoder.input_size)
    marks.append(("decode", time.perf_counter()))
    queries = np.stack(await svc.batcher.embed_each(pixels))
    marks.append(("encode", time.perf_counter()))
    answers = await search_vectors(svc, queries, collection, top_k, label, encoder=svc.batcher.encoder.name,
                                   min_score=min_score, expand=expand)
    marks.append(("search", time.perf_counter()))
    took = marks[-1][1] - marks[0][1]
    request.app.state.metrics.search.observe(took)
    timing = ", ".join(f"{name};dur={1000 * (t - marks[i][1]):.1f}" for i, (name, t) in enumerate(marks[1:]))
    body: dict[str, Any] = {"took_ms": round(took * 1000, 2)}
    if len(files) == 1:
        body["results"] = [result_json(r, collection) for r in answers[0]]
    else:
        body["queries"] = [{"image": name, "results": [result_json(r, collection) for r in results]}
                           for (name, _), results in zip(files, answers, strict=True)]
    return JSONResponse(body, headers={"Server-Timing": timing})


async def record_for(request: Request) -> tuple[Services, str, Any]:
    svc = services(request)
    image = params.IMAGE_ID.parse(request.path_params["id"])
    collection = params.COLLECTION.parse(request.query_params, svc.settings.default_table)
    catalog = await run_in_threadpool(svc.catalog)
    record = (await run_in_threadpool(catalog.get, collection, [image])).get(image)
    if record is None:
        raise ApiError(404, f"no image with id {image} in {collection!r}")
    return svc, collection, record


async def similar(request: Request) -> Response:
    """The indexed images nearest to one indexed image (itself left out)."""
    image = params.IMAGE_ID.parse(request.path_params["id"])
    return await answer_like_these(request, [image], [], searching.NEGATIVE_WEIGHT)


async def like_these(request: Request) -> Response:
    """More like the positive examples, less like the negative ones (all indexed images)."""
    query = request.query_params
    positive, negative = params.POSITIVE.parse(query), params.NEGATIVE.parse(query)
    weight = params.NEGATIVE_WEIGHT.parse(query)
    return await answer_like_these(request, positive, negative,
                                   searching.NEGATIVE_WEIGHT if weight is None else weight)


async def answer_like_these(
    request: Request, positive: list[int], negative: list[int], negative_weight: float
) -> Response:
    started = time.perf_counter()
    svc = services(request)
    query = request.query_params
    top_k = params.TOP_K.parse(query, svc.settings.top_k)
    collection = params.COLLECTION.parse(query, svc.settings.default_table)
    label, min_score = params.LABEL.parse(query), params.MIN_SCORE.parse(query)
    expansion = QueryExpansion.chosen(params.EXPAND.parse(query, svc.settings.query_expansion), svc.settings)
    stores = await run_in_threadpool(svc.stores)
    if not await run_in_threadpool(stores.vectors.exists, collection):
        raise ApiError(404, f"no collection named {collection!r}")
    results = await run_in_threadpool(lambda: searching.like_these(
        positive, negative, collection, top_k, stores.vectors, stores.catalog, label=label, min_score=min_score,
        negative_weight=negative_weight, expansion=expansion))
    return JSONResponse({"results": [result_json(r, collection) for r in results],
                         "took_ms": round((time.perf_counter() - started) * 1000, 2)})


async def image_record(request: Request) -> Response:
    include_vector = params.INCLUDE_VECTOR.parse(request.query_params, False)
    svc, collection, record = await record_for(request)
    body = {**record.as_dict(), **links(record.id, collection)}
    if include_vector:
        vectors = await run_in_threadpool(svc.vectors)
        stored = (await run_in_threadpool(vectors.vectors, collection, [record.id])).get(record.id)
        body["vector"] = None if stored is None else [float(value) for value in stored]
    return JSONResponse(body)


async def image_file(request: Request) -> Response:
    _, _, record = await record_for(request)
    path = servable_path(record)
    return FileResponse(path, media_type=media_type(path), headers=SAFE_HEADERS)


async def image_thumbnail(request: Request) -> Response:
    svc, _, record = await record_for(request)
    size = params.THUMBNAIL_SIZE.parse(request.query_params)
    path = servable_path(record)
    cache = (await run_in_threadpool(svc.stores)).thumbnails
    try:
        small = await run_in_threadpool(cache.get, path, record.collection, record.id, record.sha256, size)
    except OSError:
        raise ApiError(404, "the indexed file can no longer be read as an image") from None
    return FileResponse(small, media_type="image/jpeg", headers=SAFE_HEADERS)


async def delete_image(request: Request) -> Response:
    svc = services(request)
    require_api_key(request, svc.settings.api_key)
    _, collection, record = await record_for(request)
    await run_in_threadpool(delete_from_both, await run_in_threadpool(svc.stores), collection, [record.id])
    return JSONResponse({"deleted": record.id, "collection": collection})


async def collections(request: Request) -> Response:
    svc = services(request)
    catalog, vectors = await run_in_threadpool(svc.catalog), await run_in_threadpool(svc.vectors)
    counts = await run_in_threadpool(catalog.collections)
    names = sorted(set(counts) | set(await run_in_threadpool(vectors.list_collections)))
    return JSONResponse({"collections": [{"name": n, "count": counts.get(n, 0)} for n in names],
                         "default": svc.settings.default_table})


async def collection_detail(request: Request) -> Response:
    svc = services(request)
    name = params.COLLECTION_IN_PATH.parse(request.path_params["name"])
    stores = await run_in_threadpool(svc.stores)
    found = await run_in_threadpool(collection_counts, stores, name)
    if found is None:
        raise ApiError(404, f"no collection named {name!r}")
    return JSONResponse({
        "name": name, "count": found.indexed, "vectors": found.vectors, "failed": found.failed,
        "pending": found.pending, "labels": await run_in_threadpool(stores.catalog.label_counts, name),
        "folders": await run_in_threadpool(folder_counts, stores.catalog, name),
    })


async def collection_duplicates(request: Request) -> Response:
    started = time.perf_counter()
    svc = services(request)
    name = params.COLLECTION_IN_PATH.parse(request.path_params["name"])
    given = params.DUPLICATES_MIN_SCORE.parse(request.query_params)
    min_score = DEFAULT_MIN_SCORE if given is None else given
    stores = await run_in_threadpool(svc.stores)
    groups = await run_in_threadpool(duplicate_groups, name, stores.vectors, stores.catalog, min_score)
    return JSONResponse({"collection": name, "min_score": min_score,
                         "groups": [group_json(group, name) for group in groups],
                         "took_ms": round((time.perf_counter() - started) * 1000, 2)})


async def drop_collection(request: Request) -> Response:
    svc = services(request)
    require_api_key(request, svc.settings.api_key)
    name = params.COLLECTION_IN_PATH.parse(request.path_params["name"])
    await run_in_threadpool(drop_from_both, await run_in_threadpool(svc.stores), name)  # NotFound: 404
    return JSONResponse({"dropped": name})


async def json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"null")
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    return body


async def run_request(request: Request, path: params.ServerPath, collection: params.Collection) -> tuple[str, str]:
    """The folder and collection of a request to start an index run (`/api/index`, the
    seed's `/img/load`), once its API key is checked."""
    svc = services(request)
    require_api_key(request, svc.settings.api_key)
    body = await json_body(request)
    return path.parse(body, svc.settings.index_roots), collection.parse(body, svc.settings.default_table)


async def start_index(request: Request) -> Response:
    path, collection = await run_request(request, params.INDEX_PATH, params.COLLECTION)
    status = await run_in_threadpool(services(request).runs.start, path, collection)
    return JSONResponse({"run_id": status.run_id, "status_url": f"/api/index/{status.run_id}"},
                        status_code=202)


async def index_status(request: Request) -> Response:
    svc = services(request)
    run_id = request.path_params["run_id"]
    found = await run_in_threadpool(svc.runs.find, run_id)
    if found is None:
        raise ApiError(404, f"no index run {run_id[:60]!r}")
    return JSONResponse(found.as_dict())


class ImageEndpoint(HTTPEndpoint):
    """/api/images/{id}: read a record (GET) or delete the image (DELETE); other methods 405."""

    async def get(self, request: Request) -> Response:
        return await image_record(request)

    async def delete(self, request: Request) -> Response:
        return await delete_image(request)


class CollectionEndpoint(HTTPEndpoint):
    """/api/collections/{name}: its figures (GET) or drop it (DELETE); other methods 405."""

    async def get(self, request: Request) -> Response:
        return await collection_detail(request)

    async def delete(self, request: Request) -> Response:
        return await drop_collection(request)


ROUTES = [
    Route("/api/search", search, methods=["POST"]),
    Route("/api/similar", like_these, methods=["GET"]),
    Route("/api/images/{id}/similar", similar, methods=["GET"]),
    Route("/api/images/{id}/file", image_file, methods=["GET"]),
    Route("/api/images/{id}/thumbnail", image_thumbnail, methods=["GET"]),
    Route("/api/images/{id}", ImageEndpoint),
    Route("/api/collections", collections, methods=["GET"]),
    Route("/api/collections/{name}", CollectionEndpoint),
    Route("/api/collections/{name}/duplicates", collection_duplicates, methods=["GET"]),
    Route("/api/index", start_index, methods=["POST"]),
    Route("/api/index/{run_id}", index_status, methods=["GET"]),
]
