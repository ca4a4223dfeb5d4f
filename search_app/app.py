"""The Starlette application: routes, middleware, error handlers and lifespan."""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import swagger_ui_bundle
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from imgsearch import collection, resources
from imgsearch.settings import Settings, get_settings
from search_app import api, browsing, openapi, recent_runs, resolutions, seed
from search_app.batching import QueryBatcher
from search_app.errors import HANDLERS
from search_app.limits import BodyLimit
from search_app.metrics import Metrics, MetricsMiddleware
from search_app.services import Services

STATIC = Path(__file__).parent / "static"
HEALTH_TIMEOUT_SECONDS = 5.0
log = logging.getLogger("imgsearch.http")


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    services: Services = app.state.services
    services.encoder = await run_in_threadpool(resources.encoder_of, services.settings)
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value():
        services.runs.api.reach_in_background()
    services.batcher = QueryBatcher(services.encoder, observe=app.state.metrics.batch_size.observe)
    services.batcher.start()
    for name, opener in (("database", services.catalog), ("Milvus", services.vectors)):
        try:
            await run_in_threadpool(opener)
        except Exception as error:  # noqa: BLE001 - start anyway; /health and 503s say it
            log.warning("%s unavailable at start: %s", name, error)
    try:  # once, at start: where the embedded default ends
        for line in await run_in_threadpool(collection.past_lite_limit, services.stores()):
            print(line, file=sys.stderr, flush=True)
    except Exception as error:  # noqa: BLE001 - a store that is down is reported above and by /health
        log.debug("collection sizes not read at start: %s", error)
    try:
        yield
    finally:
        await services.batcher.stop()
        await run_in_threadpool(services.runs.close)


async def probe(check: object) -> str:
    try:
        with anyio.fail_after(HEALTH_TIMEOUT_SECONDS):
            await run_in_threadpool(check)  # type: ignore[arg-type]
        return "ok"
    except TimeoutError:
        return f"no answer within {HEALTH_TIMEOUT_SECONDS:g} s"
    except Exception as error:  # noqa: BLE001 - report, do not raise
        return " ".join(str(error).split())[:300] or type(error).__name__


async def health(request: Request) -> Response:
    services: Services = request.app.state.services
    milvus = await probe(lambda: services.vectors().ping())
    database = await probe(lambda: services.catalog().ping())
    ok = milvus == database == "ok"
    body = {"status": "ok" if ok else "degraded", "milvus": milvus, "database": database,
            "model": "ok" if services.encoder is not None else "loading"}
    return JSONResponse(body, status_code=200 if ok else 503)


async def metrics(request: Request) -> Response:
    services: Services = request.app.state.services
    payload, media_type = await run_in_threadpool(
        request.app.state.metrics.render, lambda: services.catalog().collections()
    )
    return Response(payload, media_type=media_type)


async def home(_: Request) -> Response:
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


def create_app(settings: Settings | None = None) -> Starlette:
    current = settings or get_settings()
    app_metrics = Metrics()
    routes = [
        Route("/", home, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/openapi.json", openapi.openapi_json, methods=["GET"]),
        Route("/docs", openapi.docs, methods=["GET"]),
        *api.ROUTES,
        *browsing.ROUTES,
        *resolutions.ROUTES,
        *recent_runs.ROUTES,
        *seed.ROUTES,
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
        Mount("/docs/assets", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="swagger"),
    ]
    app = Starlette(
        routes=routes,
        # Not Starlette's own `max_body_size`: when Content-Length is over the limit it replaces
        # whatever the app answers with a plain-text 413 (Starlette 1.10), and clients get JSON here.
        middleware=[Middleware(MetricsMiddleware, metrics=app_metrics),
                    Middleware(BodyLimit, max_bytes=current.max_upload_bytes)],
        exception_handlers=HANDLERS,  # type: ignore[arg-type]
        lifespan=lifespan,
    )
    app.state.services = Services(current)
    app.state.metrics = app_metrics
    return app
