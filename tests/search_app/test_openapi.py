"""`/openapi.json` documents every route and is a valid OpenAPI 3.0 document."""

from __future__ import annotations

import re

import httpx
from openapi_spec_validator import validate
from starlette.routing import Route

from search_app.app import create_app
from tests.search_app.conftest import Site

UNDOCUMENTED = {"/", "/docs", "/openapi.json"}  # the page, the docs page and the document itself


def endpoint_methods(endpoint: object) -> set[str]:
    """The methods an HTTPEndpoint class answers (a Route of a class has no `methods`)."""
    verbs = ("get", "head", "post", "put", "patch", "delete", "options")
    return {verb.upper() for verb in verbs if isinstance(endpoint, type) and hasattr(endpoint, verb)}


def test_every_route_is_documented_and_nothing_else(site: Site) -> None:
    spec = httpx.get(f"{site.url}/openapi.json").json()
    validate(spec)
    app_routes = {
        (route.path, method.lower())
        for route in create_app(site.settings).routes
        if isinstance(route, Route) and route.path not in UNDOCUMENTED
        for method in (route.methods or endpoint_methods(route.endpoint)) - {"HEAD"}
    }
    documented = {(path, method) for path, item in spec["paths"].items() for method in item}
    assert app_routes == documented


def test_documented_error_responses_use_the_error_schema(site: Site) -> None:
    spec = httpx.get(f"{site.url}/openapi.json").json()
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")) and path not in ("/health",):
                    assert response == {"$ref": f"#/components/responses/E{status}"}, (path, method, status)


def test_docs_page_uses_only_local_assets(site: Site) -> None:
    page = httpx.get(f"{site.url}/docs").text
    assert not re.search(r"(src|href)=\"https?://", page)
    for asset in re.findall(r"(?:src|href)=\"(/[^\"]+)\"", page):
        response = httpx.get(site.url + asset)
        assert response.status_code == 200 and len(response.content) > 100, asset
