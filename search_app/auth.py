"""`API_KEY`: when set, mutating routes need it as `Authorization: Bearer KEY` or `X-API-Key: KEY`."""

from __future__ import annotations

import hmac

from starlette.requests import Request

from search_app.errors import ApiError


def presented_keys(request: Request) -> list[str]:
    """Every credential the request carries: a Bearer token, an X-API-Key, or both.
    An Authorization header of another scheme counts as a wrong key, not as none."""
    keys = []
    if "authorization" in request.headers:
        scheme, _, token = request.headers["authorization"].partition(" ")
        keys.append(token.strip() if scheme.lower() == "bearer" else "")
    if "x-api-key" in request.headers:
        keys.append(request.headers["x-api-key"])
    return keys


def keys_match(given: bytes, expected: bytes) -> bool:
    """Equal keys; the time taken does not depend on where they first differ."""
    return hmac.compare_digest(given, expected)


def require_api_key(request: Request, api_key: str) -> None:
    """Raise 401 unless the request carries the key, and no wrong one beside it."""
    if not api_key:
        return
    expected = api_key.encode("utf-8")
    keys = presented_keys(request)
    matches = [keys_match(key.encode("utf-8", "surrogateescape"), expected) for key in keys]
    if not matches or not all(matches):
        raise ApiError(401, "this route needs the API key: Authorization: Bearer KEY or X-API-Key: KEY")
