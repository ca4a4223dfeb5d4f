"""Schemathesis against /openapi.json: every documented operation, hundreds of
generated requests; no 5xx, and every response matches the documented schema.

It runs on an app of its own (own stores, INDEX_ROOTS set to its photo folder,
an API key it sends) so that generated deletes and index requests can do what they like.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from imgsearch.catalog import Catalog
from imgsearch.discover import discover
from imgsearch.resources import encoder_of
from imgsearch.indexing import index_chunk
from imgsearch.samples import Photo
from imgsearch.settings import load_settings
from search_app.app import create_app
from search_app.openapi import document
from tests.conftest import write_folder
from tests.search_app.conftest import live_server

KEY = "fuzz-key"
UPLOAD_ROUTES = {"/api/search", "/img/search", "/img/upload"}
# Bodies a schema cannot rule out: an image both kept and removed, files both moved and deleted (422).
SEMANTIC_ROUTES = {"/api/collections/{name}/duplicates/resolve"}
CASES: list[str] = []
MIN_CASES = 500


@pytest.fixture(scope="module")
def fuzz_url(tmp_path_factory: pytest.TempPathFactory, photos: list[Photo], weights: Path,
             prefect_api: None) -> Iterator[str]:
    root = tmp_path_factory.mktemp("fuzz")
    write_folder(root / "photos", photos, 6, seed=51)
    config = load_settings(data_dir=root / "data", INDEX_ROOTS=str(root / "photos"),
                           max_upload_mb=2, default_table="fuzz", api_key=KEY)
    from imgsearch import resources

    vectors = resources.vector_store(config.milvus_uri)  # the app shares this client
    index_chunk(discover(root / "photos").images, "fuzz", Catalog(config.database_url), vectors,
                encoder_of(config))
    with live_server(create_app(config)) as url:
        yield url


# The document the app serves; test_the_served_document_is_the_one_fuzzed checks they are equal.
# (schemathesis' from_fixture fails on pytest 9, so the schema is loaded at import.)
schema = schemathesis.openapi.from_dict(document())


@schema.parametrize()
@settings(max_examples=45, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_no_5xx_and_every_response_matches_the_schema(case: object, fuzz_url: str) -> None:
    CASES.append(f"{case.method} {case.path}")  # type: ignore[attr-defined]
    # With the key, so that mutating routes are fuzzed too; schemathesis also
    # checks that they refuse requests without it or with a wrong one.
    # An upload's schema is "binary": no schema can say "bytes that decode as an
    # image", so there a 415 for generated non-image bytes is the right answer.
    lenient = case.path in UPLOAD_ROUTES | SEMANTIC_ROUTES  # type: ignore[attr-defined]
    case.call_and_validate(  # type: ignore[attr-defined]
        base_url=fuzz_url, headers={"X-API-Key": KEY},
        excluded_checks=[positive_data_acceptance] if lenient else None,
    )


def test_the_served_document_is_the_one_fuzzed(fuzz_url: str) -> None:
    import httpx

    assert httpx.get(f"{fuzz_url}/openapi.json").json() == document()


def test_enough_cases_ran() -> None:
    if not CASES:
        pytest.skip("run with the fuzz test above")
    assert len(CASES) >= MIN_CASES, f"only {len(CASES)} generated requests"
    assert len(set(CASES)) >= 15, sorted(set(CASES))
