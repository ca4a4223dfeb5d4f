"""Every error a client sees is JSON `{"error", "detail"}` with a fitting 4xx or 503.

Decoding failures map to the status that says what is wrong with the upload;
an unreachable backend is 503 (retry later), never 500.
"""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from imgsearch.catalog import CatalogError
from imgsearch.decode import DecodeError
from imgsearch.vectors import EncoderMismatch, VectorStoreError
from imgsearch.weights import WeightsError

log = logging.getLogger("imgsearch.http")

PHRASES = {400: "bad request", 401: "unauthorized", 404: "not found", 405: "method not allowed",
           409: "conflict", 413: "payload too large", 415: "unsupported media type", 422: "unprocessable entity",
           500: "internal error", 503: "service unavailable"}


class ApiError(Exception):
    def __init__(self, status: int, detail: str, error: str | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail
        self.error = error or PHRASES.get(status, "error")


def error_response(status: int, detail: str, error: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": error or PHRASES.get(status, "error"), "detail": detail}
    return JSONResponse(body, status_code=status, headers=headers)


def decode_status(error: DecodeError) -> int:
    reason = str(error)
    if reason.startswith("empty"):
        return 400
    if reason.startswith("decompression bomb"):
        return 413
    if reason.startswith("not an image"):
        return 415
    return 422  # truncated or corrupt


async def api_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return error_response(exc.status, exc.detail, exc.error, headers)


async def http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, str(exc.detail), headers=exc.headers)


async def decode_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, DecodeError)
    return error_response(decode_status(exc), str(exc))


BACKENDS = {VectorStoreError: "Milvus", CatalogError: "the database", WeightsError: "the model"}


async def backend_error(_: Request, exc: Exception) -> Response:
    """503 naming the backend; its address and the driver's message stay in the log."""
    log.warning("backend unavailable: %s", exc)
    backend = next((name for kind, name in BACKENDS.items() if isinstance(exc, kind)), "a backend")
    detail = f"{backend} is unavailable; retry later" if backend != "the model" else str(exc)
    return error_response(503, detail, headers={"Retry-After": "5"})


async def encoder_mismatch(_: Request, exc: Exception) -> Response:
    """409: the collection was embedded by another encoder; the detail says how to proceed."""
    return error_response(409, str(exc))


async def unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(500, "unexpected server error; it has been logged")


HANDLERS = {
    ApiError: api_error,
    HTTPException: http_error,
    DecodeError: decode_error,
    EncoderMismatch: encoder_mismatch,
    VectorStoreError: backend_error,
    CatalogError: backend_error,
    WeightsError: backend_error,
    Exception: unexpected_error,
}
