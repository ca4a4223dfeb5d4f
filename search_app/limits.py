"""Request bodies larger than the upload limit are refused with 413, even without Content-Length.

Not Starlette 1.10's `max_body_size`: when the declared Content-Length is over the
limit, its middleware replaces whatever response the app starts, the JSON error
of our handlers included, with a plain-text "Content Too Large" (`send_with_limit`
in `starlette/middleware/body_limit.py`), and every error here is JSON."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from search_app.errors import ApiError, error_response


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        too_large = f"the request body exceeds the upload limit of {self.max_bytes} bytes"
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await error_response(413, too_large)(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise ApiError(413, too_large)
            return message

        await self.app(scope, limited, send)
