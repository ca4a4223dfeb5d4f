"""Every error a client sees is JSON `{"error", "detail"}` with a fitting 4xx or 503.

Core errors (`imgsearch.errors`) answer the status their kind carries: an upload
that is empty 400, too large 413, not an image 415, corrupt 422; another encoder's
collection 409; an unreachable backend 503 (retry later), never 500.
"""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from imgsearch.errors import ImgsearchError, Unavailable
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


async def api_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return error_response(exc.status, exc.detail, exc.error, headers)


async def http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, str(exc.detail), headers=exc.headers)


async def imgsearch_error(_: Request, exc: Exception) -> Response:
    """Any core error, by the status its kind carries; a backend's 503 names it and
    keeps its address and the driver's message in the log."""
    assert isinstance(exc, ImgsearchError)
    if isinstance(exc, Unavailable):
        log.warning("backend unavailable: %s", exc)
        # The model's message says how to provision it; the others would leak addresses.
        detail = str(exc) if isinstance(exc, WeightsError) else f"{exc.backend} is unavailable; retry later"
        return error_response(exc.status, detail, headers={"Retry-After": "5"})
    return error_response(exc.status, str(exc))


async def unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(500, "unexpected server error; it has been logged")


HANDLERS = {
    ApiError: api_error,
    HTTPException: http_error,
    ImgsearchError: imgsearch_error,
    Exception: unexpected_error,
}
