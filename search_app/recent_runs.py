"""The runs panel's data: the newest index, sync and reconcile runs, read from the Prefect API
(`/api/runs`), with their state, figures and a link to each in the Prefect UI.

With no PREFECT_API_URL the first call starts Prefect's temporary API in this process (a few
seconds): the page asks only when its runs panel is opened."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from search_app import params
from search_app.api import services
from search_app.errors import ApiError

FLOWS = ["index-images", "sync-folder", "reconcile"]
RUNS_LIMIT = params.Integer("limit", 1, 200, "runs, the newest first, 1..200; empty or absent: 20", default=20)


async def recent_runs(request: Request) -> Response:
    limit = RUNS_LIMIT.parse(request.query_params)
    runs = services(request).runs
    try:
        found = await run_in_threadpool(runs.api.recent_runs, FLOWS, limit)
    except Exception as error:  # noqa: BLE001 - the Prefect API is a backend: 503, not 500
        raise ApiError(503, f"the Prefect API could not list runs: {' '.join(str(error).split())[:200]}") from None
    return JSONResponse({"runs": found})


ROUTES = [Route("/api/runs", recent_runs, methods=["GET"])]
