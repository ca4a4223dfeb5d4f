"""The search service with Milvus or the database down: /health names which,
the API answers 503 JSON (never 500), and it recovers by itself."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from imgsearch.resources import release_stores
from imgsearch.catalog import Catalog
from imgsearch.discover import discover
from imgsearch.resources import encoder_of
from imgsearch.indexing import index_chunk
from imgsearch.samples import Photo
from imgsearch.settings import get_settings, load_settings
from imgsearch.vectors import VectorStore
from search_app.app import create_app
from tests.backends import MilvusLiteServer, PrivateMariaDB
from tests.conftest import write_folder
from tests.search_app.conftest import live_server

COLLECTION = "faulty"


@dataclass
class Service:
    url: str
    milvus: MilvusLiteServer
    mariadb: PrivateMariaDB
    query: bytes
    first: int  # the id the query finds first


@pytest.fixture
def service(
    milvus_server: MilvusLiteServer, mariadb: PrivateMariaDB, tmp_path: Path, photos: list[Photo],
    weights: Path, prefect_api: None,
) -> Iterator[Service]:
    settings = load_settings(data_dir=tmp_path / "data", milvus_uri=milvus_server.uri,
                             database_url=mariadb.url, default_table=COLLECTION)
    paths = write_folder(tmp_path / "photos", photos, 8, seed=31)
    catalog, vectors = Catalog(mariadb.url), VectorStore(milvus_server.uri)
    index_chunk(discover(tmp_path / "photos").images, COLLECTION, catalog, vectors,
                encoder_of(settings))
    first = catalog.by_path(COLLECTION, str(paths[0].resolve()))
    assert first is not None
    catalog.close()
    vectors.close()
    with live_server(create_app(settings)) as url:
        yield Service(url, milvus_server, mariadb, paths[0].read_bytes(), first.id)
    release_stores()
    get_settings.cache_clear()


def search(client: httpx.Client, service: Service) -> httpx.Response:
    return client.post("/api/search", params={"collection": COLLECTION, "top_k": 3},
                       files={"image": ("q.jpg", service.query)})


@pytest.mark.parametrize(("backend", "key", "named"), [("milvus", "milvus", "Milvus"),
                                                        ("mariadb", "database", "the database")])
def test_a_backend_outage_is_503_then_recovers_by_itself(
    backend: str, key: str, named: str, service: Service
) -> None:
    server = service.milvus if backend == "milvus" else service.mariadb
    other = "database" if key == "milvus" else "milvus"
    with httpx.Client(base_url=service.url, timeout=60) as client:
        assert client.get("/health").status_code == 200
        assert search(client, service).json()["results"][0]["id"] == service.first

        server.stop(kill=backend == "milvus")
        health = client.get("/health")
        assert health.status_code == 503
        assert health.json()[key] != "ok" and health.json()[other] == "ok", health.json()
        where = {"collection": COLLECTION}
        responses = [search(client, service), client.get("/api/collections"),
                     client.get(f"/api/images/{service.first}/similar", params=where)]
        if backend == "mariadb":  # these read the catalog only
            responses += [client.get(f"/api/images/{service.first}", params=where),
                          client.get(f"/api/images/{service.first}/thumbnail", params=where)]
        for response in responses:
            assert response.status_code == 503, (response.request.url, response.status_code, response.text)
            assert response.json() == {"error": "service unavailable",
                                       "detail": f"{named} is unavailable; retry later"}
            assert response.headers["retry-after"] == "5"

        server.start()
        deadline = time.monotonic() + 60
        while client.get("/health").status_code != 200:
            assert time.monotonic() < deadline, "the service did not recover"
            time.sleep(0.5)
        recovered = search(client, service)
        assert recovered.status_code == 200, recovered.text
        assert recovered.json()["results"][0]["id"] == service.first
        assert client.get("/api/collections").status_code == 200
