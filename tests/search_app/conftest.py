"""A real uvicorn server on a free loopback port, over a real index of real photos."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from imgsearch.resources import release_stores
from imgsearch.catalog import Catalog
from imgsearch.discover import discover
from imgsearch.resources import encoder_of
from imgsearch.indexing import index_chunk
from imgsearch.samples import Photo
from imgsearch.settings import Settings, get_settings, load_settings
from imgsearch.vectors import VectorStore
from search_app.app import create_app
from tests.conftest import write_folder

COLLECTION = "http_photos"
PHOTOS = 30
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
TIMEOUT_MS = 120_000  # generous: a search on 2 busy cores can take seconds, not 30 s of default
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
         "--disable-background-networking", "--disable-component-update"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """On pytest 9 every operation's schemathesis test has the same node id (its name says
    `[GET /path]`, its id does not); pytest-xdist tells tests apart by node id and ran only
    the first. Each gets the id its name says."""
    for item in items:
        if getattr(item, "operation_label", None) and item.parent is not None and not item.nodeid.endswith("]"):
            item._id = item.parent.id.child(item.name)


@contextmanager
def live_server(app: object) -> Iterator[str]:
    """Serve `app` with uvicorn in a thread; yield its base URL; stop it cleanly."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, lifespan="on", log_level="warning"))  # type: ignore[arg-type]
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@dataclass
class Site:
    url: str
    settings: Settings
    photos: list[Path]  # indexed into COLLECTION, in order
    root: Path
    catalog: Catalog
    vectors: VectorStore
    make: Callable[..., object]  # build another app on the same stores (other settings)

    def client(self, **headers: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60, headers=headers)

    def index(self, folder: Path, collection: str) -> None:
        index_chunk(discover(folder).images, collection, self.catalog, self.vectors, encoder_of(self.settings))


@pytest.fixture(scope="package")
def site(
    tmp_path_factory: pytest.TempPathFactory, weights: Path, photos: list[Photo], prefect_api: None
) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("site")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DATA_DIR", str(root / "data"))
        patch.setenv("MAX_UPLOAD_MB", "3")
        for name in ("MILVUS_URI", "DATABASE_URL", "MILVUS_HOST", "MYSQL_HOST", "DEFAULT_TABLE", "API_KEY"):
            patch.delenv(name, raising=False)
        get_settings.cache_clear()
        settings = get_settings()
        paths = write_folder(root / "photos", photos, PHOTOS, seed=7)
        from imgsearch import resources

        catalog = resources.catalog(settings.database_url)
        vectors = resources.vector_store(settings.milvus_uri)  # the app shares this client
        site = Site("", settings, sorted(paths), root, catalog, vectors,
                    lambda **changes: create_app(load_settings(**changes)))
        site.index(root / "photos", COLLECTION)
        with live_server(create_app(settings)) as url:
            site.url = url
            yield site
        release_stores()
        get_settings.cache_clear()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Debian's headless Chromium, driven by Playwright."""
    if CHROMIUM is None:
        if os.environ.get("IMGSEARCH_REQUIRE_BROWSER"):
            pytest.fail("IMGSEARCH_REQUIRE_BROWSER is set but no chromium is installed")
        pytest.skip("no chromium installed (setup.sh --test installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield launched
        launched.close()
