"""The OpenAPI 3.0 document of every route, and `/docs` rendering it with the
Swagger UI assets of the `swagger-ui-bundle` package, served by the app itself."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

import imgsearch
from search_app import params
from search_app.api import MAX_QUERY_IMAGES
from search_app.recent_runs import RUNS_LIMIT

JSON = "application/json"


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def json_response(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def errors(*statuses: int) -> dict[str, Any]:
    return {str(s): {"$ref": f"#/components/responses/E{s}"} for s in statuses}


def form_schema(field: params.Integer | params.Collection | params.Label | params.Score) -> dict[str, Any]:
    return field.form_schema() if isinstance(field, params.Integer) else field.schema()


def upload(*fields: params.Integer | params.Collection | params.Label | params.Score,
           most: int = 1) -> dict[str, Any]:
    """A multipart body: the image (or up to `most` of them), and text fields described by
    the parameters that parse them."""
    image = {"type": "string", "format": "binary", "minLength": 1}
    if most > 1:
        image = {"anyOf": [image, {"type": "array", "items": image, "minItems": 1, "maxItems": most}],
                 "description": f"one image, or up to {most} in this field repeated: answered in their order"}
    return {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["image"],
        "properties": {"image": image, **{field.name: field.schema() for field in fields}}}}}}


ID = params.IMAGE_ID.parameter()
NAME = params.COLLECTION_IN_PATH.parameter()
TOP_K, COLLECTION, LABEL, TABLE, MIN_SCORE, EXPAND = (params.TOP_K.query(), params.COLLECTION.query(),
                                                      params.LABEL.query(), params.SEED_TABLE.query(),
                                                      params.MIN_SCORE.query(), params.EXPAND.query())
SECURED = [{"bearer": []}, {"apiKey": []}]
UPLOAD = upload(params.TOP_K, params.COLLECTION, params.LABEL, params.MIN_SCORE, params.EXPAND, most=MAX_QUERY_IMAGES)
SEED_UPLOAD = upload(params.SEED_TOP_K, params.MIN_SCORE)
IMAGE_ONLY = upload()
IMAGE_BYTES = {"description": "the image", "content": {"image/*": {"schema": {"type": "string", "format": "binary"}}}}

SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error", "detail"],
              "properties": {"error": {"type": "string"}, "detail": {"type": "string"}}},
    "Result": {"type": "object", "required": ["id", "path", "score", "labels", "image_url", "thumbnail_url"],
               "properties": {"id": {"type": "integer"}, "path": {"type": "string"},
                              "score": {"type": "number", "description": "cosine similarity"},
                              "labels": {"type": "array", "items": {"type": "string"}},
                              "image_url": {"type": "string"}, "thumbnail_url": {"type": "string"}}},
    "Results": {"type": "object", "required": ["results", "took_ms"],
                "properties": {"results": {"type": "array", "items": ref("Result")},
                               "took_ms": {"type": "number"}}},
    "SearchAnswer": {"type": "object", "required": ["took_ms"], "description": (
        "one image sent: `results`; several: `queries`, one per image in the order sent"), "properties": {
        "results": {"type": "array", "items": ref("Result")},
        "queries": {"type": "array", "items": {"type": "object", "required": ["image", "results"], "properties": {
            "image": {"type": "string", "description": "the file name sent"},
            "results": {"type": "array", "items": ref("Result")}}}},
        "took_ms": {"type": "number"}}},
    "Image": {"type": "object", "required": ["id", "collection", "path", "status", "labels"],
              "properties": {"id": {"type": "integer"}, "collection": {"type": "string"},
                             "path": {"type": "string"}, "sha256": {"type": "string", "nullable": True},
                             "size": {"type": "integer", "nullable": True},
                             "mtime": {"type": "integer", "nullable": True},
                             "width": {"type": "integer", "nullable": True},
                             "height": {"type": "integer", "nullable": True},
                             "labels": {"type": "array", "items": {"type": "string"}},
                             "folder": {"type": "string"}, "status": {"type": "string"},
                             "error": {"type": "string", "nullable": True},
                             "indexed_at": {"type": "string", "nullable": True},
                             "image_url": {"type": "string"}, "thumbnail_url": {"type": "string"},
                             "vector": {"type": "array", "items": {"type": "number"}, "nullable": True,
                                        "description": "with include_vector=true: the stored vector, "
                                                       "null if none is stored"}}},
    "Collections": {"type": "object", "required": ["collections", "default"], "properties": {
        "collections": {"type": "array", "items": {"type": "object", "required": ["name", "count"],
                        "properties": {"name": {"type": "string"}, "count": {"type": "integer"}}}},
        "default": {"type": "string"}}},
    "Collection": {"type": "object", "required": ["name", "count", "vectors", "failed", "pending", "labels"],
                   "properties": {"name": {"type": "string"}, "count": {"type": "integer"},
                                  "vectors": {"type": "integer"}, "failed": {"type": "integer"},
                                  "pending": {"type": "integer",
                                              "description": "found by a run, not yet indexed"},
                                  "labels": {"type": "object", "additionalProperties": {"type": "integer"}},
                                  "folders": {"type": "object", "additionalProperties": {"type": "integer"},
                                              "description": "images per folder, the fullest first (500 at most)"}}},
    "ImagePage": {"type": "object", "required": ["collection", "images", "next"], "properties": {
        "collection": {"type": "string"},
        "images": {"type": "array", "description": "the most recently indexed first", "items": {
            "type": "object", "required": ["id", "path", "labels", "image_url", "thumbnail_url"], "properties": {
                "id": {"type": "integer"}, "path": {"type": "string"}, "folder": {"type": "string"},
                "labels": {"type": "array", "items": {"type": "string"}},
                "width": {"type": "integer", "nullable": True}, "height": {"type": "integer", "nullable": True},
                "size": {"type": "integer", "nullable": True}, "indexed_at": {"type": "string", "nullable": True},
                "image_url": {"type": "string"}, "thumbnail_url": {"type": "string"}}}},
        "next": {"type": "string", "nullable": True, "description": "`after` for the next page; null on the last"}}},
    "ResolveRequest": {"type": "object", "required": ["keep", "remove"], "properties": {
        "keep": {"type": "integer", "minimum": 0, "description": "the image to keep (a group's first is suggested)"},
        "remove": {"type": "array", "minItems": 1, "maxItems": 1000, "items": {"type": "integer", "minimum": 0},
                   "description": "the images to take out of the index"},
        "move_to": {"type": "string", "nullable": True,
                    "description": "move their files into this absolute folder (inside INDEX_ROOTS when set)"},
        "delete_files": {"type": "boolean", "description": "delete their files from disk (cannot be undone)"},
        "dry_run": {"type": "boolean", "description": "only say what would be done"}}},
    "Resolution": {"type": "object", "required": ["collection", "keep", "removed", "dry_run", "undo_url"],
                   "properties": {
        "collection": {"type": "string"}, "dry_run": {"type": "boolean"}, "undoable": {"type": "boolean"},
        "keep": {"type": "object", "properties": {"id": {"type": "integer"}, "path": {"type": "string"}}},
        "removed": {"type": "array", "items": {"type": "object", "properties": {
            "id": {"type": "integer"}, "path": {"type": "string"},
            "moved_to": {"type": "string", "nullable": True}, "deleted": {"type": "boolean"},
            "error": {"type": "string", "nullable": True,
                      "description": "out of the index, but the file could not be moved or deleted"}}}},
        "undo_url": {"type": "string", "nullable": True,
                     "description": "POST here to undo, while this server process runs; null if files were deleted"}}},
    "Runs": {"type": "object", "required": ["runs"], "properties": {"runs": {"type": "array", "items": {
        "type": "object", "required": ["id", "name", "flow", "state"], "properties": {
            "id": {"type": "string"}, "name": {"type": "string"}, "flow": {"type": "string"},
            "state": {"type": "string", "description": "COMPLETED, RUNNING, FAILED, ..."},
            "state_name": {"type": "string"},
            "start_time": {"type": "string", "nullable": True}, "end_time": {"type": "string", "nullable": True},
            "parameters": {"type": "object"},
            "figures": {"type": "object", "description": "the run's summary table (found, indexed, failed, ...)"},
            "ui_url": {"type": "string", "nullable": True,
                       "description": "the run in the Prefect UI; null on Prefect's temporary API"}}}}}},
    "DuplicateGroups": {"type": "object", "required": ["collection", "min_score", "groups", "took_ms"], "properties": {
        "collection": {"type": "string"}, "min_score": {"type": "number"}, "took_ms": {"type": "number"},
        "groups": {"type": "array", "description": "the largest groups first, then the closest", "items": {
            "type": "object", "required": ["size", "score", "images"], "properties": {
                "size": {"type": "integer", "minimum": 2},
                "score": {"type": "number", "description": "the lowest similarity of an image to the first"},
                "images": {"type": "array", "description": "the one to keep first: most pixels, then most bytes",
                           "items": {"type": "object", "required": ["id", "path", "score"], "properties": {
                               "id": {"type": "integer"}, "path": {"type": "string"},
                               "score": {"type": "number", "description": "similarity to the first image"},
                               "width": {"type": "integer", "nullable": True},
                               "height": {"type": "integer", "nullable": True},
                               "size": {"type": "integer", "nullable": True},
                               "image_url": {"type": "string"}, "thumbnail_url": {"type": "string"}}}}}}}}},
    "IndexRequest": {"type": "object", "required": [params.INDEX_PATH.name], "properties": {
        params.INDEX_PATH.name: params.INDEX_PATH.schema(),
        params.COLLECTION.name: {**params.COLLECTION.schema(), "nullable": True}}},
    "IndexStarted": {"type": "object", "required": ["run_id", "status_url"],
                     "properties": {"run_id": {"type": "string"}, "status_url": {"type": "string"}}},
    "IndexRun": {"type": "object", "required": ["run_id", "state"], "properties": {
        "run_id": {"type": "string"}, "path": {"type": "string", "nullable": True},
        "collection": {"type": "string", "nullable": True},
        "state": {"type": "string", "description": "PENDING, RUNNING, COMPLETED, FAILED, CRASHED, ..."},
        "processed": {"type": "integer", "nullable": True}, "total": {"type": "integer", "nullable": True},
        "failed": {"type": "integer", "nullable": True},
        "summary": {"type": "object", "nullable": True}, "error": {"type": "string", "nullable": True},
        "started_at": {"type": "number", "nullable": True},
        "finished_at": {"type": "number", "nullable": True}}},
    "Health": {"type": "object", "required": ["status", "milvus", "database"], "properties": {
        "status": {"type": "string", "enum": ["ok", "degraded"]},
        "milvus": {"type": "string"}, "database": {"type": "string"}, "model": {"type": "string"}}},
}


def operation(summary: str, responses: dict[str, Any], *, parameters: list[Any] | None = None,
              body: dict[str, Any] | None = None, secured: bool = False, tag: str = "search") -> dict[str, Any]:
    spec: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": responses}
    if parameters:
        spec["parameters"] = parameters
    if body:
        spec["requestBody"] = body
    if secured:
        spec["security"] = SECURED
    return spec


PATHS: dict[str, Any] = {
    "/api/search": {"post": operation(
        "Search by uploaded images", {"200": json_response("nearest images, best first", ref("SearchAnswer")),
                                      **errors(400, 404, 413, 415, 422, 503)},
        parameters=[TOP_K, COLLECTION, LABEL, MIN_SCORE, EXPAND], body=UPLOAD)},
    "/api/similar": {"get": operation(
        "More like these indexed images, less like those", {
            "200": json_response("nearest to the examples' direction, the examples excluded", ref("Results")),
            **errors(404, 422, 503)},
        parameters=[params.POSITIVE.query(), params.NEGATIVE.query(), params.NEGATIVE_WEIGHT.query(), TOP_K,
                    COLLECTION, LABEL, MIN_SCORE, EXPAND])},
    "/api/images/{id}/similar": {"get": operation(
        "More like an indexed image", {"200": json_response("nearest images", ref("Results")),
                                       **errors(404, 422, 503)},
        parameters=[ID, TOP_K, COLLECTION, LABEL, MIN_SCORE, EXPAND])},
    "/api/images/{id}": {
        "get": operation("An image's record", {"200": json_response("the record", ref("Image")),
                                               **errors(404, 422, 503)},
                         parameters=[ID, COLLECTION, params.INCLUDE_VECTOR.query()]),
        "delete": operation("Delete an image from both stores", {
            "200": json_response("deleted", {"type": "object"}), **errors(401, 404, 422, 503)},
            parameters=[ID, COLLECTION], secured=True, tag="manage")},
    "/api/images/{id}/file": {"get": operation(
        "The original image", {"200": IMAGE_BYTES, **errors(404, 422, 503)}, parameters=[ID, COLLECTION])},
    "/api/images/{id}/thumbnail": {"get": operation(
        "A cached JPEG thumbnail", {"200": IMAGE_BYTES, **errors(404, 422, 503)},
        parameters=[ID, COLLECTION, params.THUMBNAIL_SIZE.query()])},
    "/api/collections": {"get": operation(
        "Collections and their sizes", {"200": json_response("collections", ref("Collections")), **errors(503)},
        tag="manage")},
    "/api/collections/{name}": {
        "get": operation("A collection's counts and labels", {
            "200": json_response("the collection", ref("Collection")), **errors(404, 422, 503)},
            parameters=[NAME], tag="manage"),
        "delete": operation("Drop a collection", {"200": json_response("dropped", {"type": "object"}),
                                                  **errors(401, 404, 422, 503)},
                            parameters=[NAME], secured=True, tag="manage")},
    "/api/collections/{name}/duplicates": {"get": operation(
        "Groups of images that are copies of each other", {
            "200": json_response("the groups", ref("DuplicateGroups")), **errors(404, 422, 503)},
        parameters=[NAME, params.DUPLICATES_MIN_SCORE.query()], tag="manage")},
    "/api/collections/{name}/images": {"get": operation(
        "Browse a collection: its images, the most recently indexed first, a page at a time", {
            "200": json_response("a page", ref("ImagePage")), **errors(404, 422, 503)},
        parameters=[NAME, params.PAGE_LIMIT.query(), params.PAGE_AFTER.query(), LABEL, params.FOLDER.query()])},
    "/api/collections/{name}/duplicates/resolve": {"post": operation(
        "Resolve a duplicate group: keep one image, take the others out of the index (files moved or kept)", {
            "200": json_response("what was done (or would be, with dry_run)", ref("Resolution")),
            **errors(400, 401, 403, 404, 422, 503)},
        parameters=[NAME], body={"required": True, "content": {JSON: {"schema": ref("ResolveRequest")}}},
        secured=True, tag="manage")},
    "/api/resolutions/{token}/undo": {"post": operation(
        "Undo a resolution: files moved back, records and vectors restored", {
            "200": json_response("restored", {"type": "object", "properties": {
                "collection": {"type": "string"}, "restored": {"type": "integer"}}}),
            **errors(401, 404, 422, 503)},
        parameters=[{"name": "token", "in": "path", "required": True, "schema": {"type": "string"}}],
        secured=True, tag="manage")},
    "/api/runs": {"get": operation(
        "Recent index, sync and reconcile runs, from the Prefect API", {
            "200": json_response("the newest first", ref("Runs")), **errors(422, 503)},
        parameters=[RUNS_LIMIT.query()], tag="manage")},
    "/api/index": {"post": operation(
        "Start indexing a folder on the server (a Prefect flow run)", {
            "202": json_response("started", ref("IndexStarted")), **errors(400, 401, 403, 404, 422, 503)},
        body={"required": True, "content": {JSON: {"schema": ref("IndexRequest")}}}, secured=True,
        tag="manage")},
    "/api/index/{run_id}": {"get": operation(
        "State and progress of an index run", {"200": json_response("the run", ref("IndexRun")), **errors(404)},
        parameters=[{"name": "run_id", "in": "path", "required": True, "schema": {"type": "string"}}],
        tag="manage")},
    "/health": {"get": operation("Are Milvus and the database reachable?", {
        "200": json_response("all reachable", ref("Health")),
        "503": json_response("a backend is down", ref("Health"))}, tag="operations")},
    "/metrics": {"get": operation("Prometheus metrics", {"200": {
        "description": "text exposition format", "content": {"text/plain": {"schema": {"type": "string"}}}}},
        tag="operations")},
    "/img/load": {"post": operation("Seed: load a folder; answers once it is loaded", {
        "200": json_response("loaded: \"Successfully loaded data!\"", {"type": "string"}),
        "202": json_response("started (with wait=false)", {"type": "string"}),
        **errors(400, 401, 403, 404, 422, 503)},
        parameters=[params.WAIT.query()],
        body={"required": True, "content": {JSON: {"schema": {"type": "object", "required": [params.SEED_FILE.name],
              "properties": {params.SEED_FILE.name: params.SEED_FILE.schema(),
                             params.SEED_BODY_TABLE.name: {**params.SEED_BODY_TABLE.schema(), "nullable": True}}}}}},
        secured=True, tag="seed")},
    "/img/upload": {"post": operation("Seed: upload and index one image", {
        "200": json_response("indexed", {"type": "string"}), **errors(400, 401, 413, 415, 422, 503)},
        parameters=[TABLE], body=IMAGE_ONLY, secured=True, tag="seed")},
    "/img/search": {"post": operation("Seed: search, as [[path, distance], ...]", {
        "200": json_response("nearest first (squared L2 of unit vectors)", {"type": "array", "items": {
            "type": "array", "minItems": 2, "maxItems": 2, "items": {}}}),
        **errors(400, 404, 413, 415, 422, 503)}, parameters=[TABLE, MIN_SCORE], body=SEED_UPLOAD,
        tag="seed")},
    "/img/count": {"post": operation("Seed: count images", {
        "200": json_response("count", {"type": "integer"}), **errors(422, 503)}, parameters=[TABLE], tag="seed")},
    "/img/drop": {"post": operation("Seed: drop a collection", {
        "200": json_response("dropped", {"type": "string"}), **errors(401, 422, 503)},
        parameters=[TABLE], secured=True, tag="seed")},
    "/progress": {"get": operation("Seed: progress of the latest load", {
        "200": json_response("current and total", {"type": "string"})}, tag="seed")},
    "/data": {"get": operation("Seed: an indexed image by its path", {"200": IMAGE_BYTES, **errors(404, 503)},
                               parameters=[{"name": "image_path", "in": "query", "required": False, "schema": {"type": "string"}}],
                               tag="seed")},
}


def document() -> dict[str, Any]:
    error = json_response("error", ref("Error"))
    return {
        "openapi": "3.0.3",
        "info": {"title": "imgsearch", "version": imgsearch.__version__,
                 "description": "Reverse image search over ResNet50 features in Milvus."},
        "paths": PATHS,
        "components": {
            "schemas": SCHEMAS,
            "responses": {f"E{s}": error for s in (400, 401, 403, 404, 413, 415, 422, 503)},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}},
        },
    }


async def openapi_json(_: Request) -> Response:
    return JSONResponse(document())


DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>imgsearch API</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/static/docs.js"></script></body></html>"""


async def docs(_: Request) -> Response:
    return HTMLResponse(DOCS_PAGE)
