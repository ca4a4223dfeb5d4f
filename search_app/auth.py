"""`API_KEY`: when set, mutating routes need it as `Authorization: Bearer KEY` or `X-API-Key: KEY`."""

from __future__ import annotations

import hmac

from starlette.requests import Request

from search_app.errors import ApiError


def presented_key(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token:
        return token.strip()
    return request.headers.get("x-api-key", "")


def keys_match(given: bytes, expected: bytes) -> bool:
    """Equal keys; the time taken does not depend on where they first differ."""
    return hmac.compare_digest(given, expected)


def require_api_key(request: Request, api_key: str) -> None:
    """Raise 401 unless the request carries the key."""
    if not api_key:
        return
    if not keys_match(presented_key(request).encode("utf-8", "surrogateescape"), api_key.encode("utf-8")):
        raise ApiError(401, "this route needs the API key: Authorization: Bearer KEY or X-API-Key: KEY")
