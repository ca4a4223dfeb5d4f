"""API key on mutating routes; no file-serving route reads past the indexed images."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx
import pytest

from imgsearch.vectors import image_id
from tests.conftest import write_folder
from tests.search_app.conftest import COLLECTION, Site, live_server
from tests.search_app.test_api import assert_error, png

KEY = "s3cret-k3y"


@pytest.fixture(scope="module")
def guarded(site: Site) -> str:
    """A second app over the same stores, with API_KEY set."""
    with live_server(site.make(api_key=KEY)) as url:
        yield url


MUTATING = [
    ("POST", "/api/index", {"json": {"path": "/tmp"}}),
    ("DELETE", "/api/images/1", {}),
    ("DELETE", "/api/collections/some_collection", {}),
    ("POST", "/api/collections/some_collection/duplicates/resolve", {"json": {"keep": 1, "remove": [2], "dry_run": True}}),
    ("POST", "/api/resolutions/some-token/undo", {}),
    ("POST", "/img/load", {"json": {"File": "/tmp"}}),
    ("POST", "/img/upload", {"files": {"image": ("x.png", png((8, 8)))}}),
    ("POST", "/img/drop", {"params": {"table_name": "some_collection"}}),
]


@pytest.mark.parametrize(("method", "path", "options"), MUTATING)
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"X-API-Key": KEY[:-1]},
                                     {"X-API-Key": KEY + "x"}, {"Authorization": f"Basic {KEY}"},
                                     {"Authorization": "Bearer"}])
def test_mutating_routes_need_the_key(guarded: str, method: str, path: str, options: dict, headers: dict) -> None:
    response = httpx.request(method, guarded + path, headers=headers, timeout=30, **options)
    assert_error(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"


def test_the_key_opens_them_either_way(guarded: str, site: Site, photos: list, tmp_path: Path) -> None:
    write_folder(tmp_path / "k", photos, 2, seed=21)
    site.index(tmp_path / "k", "keyed")
    victim = image_id(str(next((tmp_path / "k").rglob("*.jpg"))))
    bearer = httpx.delete(f"{guarded}/api/images/{victim}", params={"collection": "keyed"},
                          headers={"Authorization": f"Bearer {KEY}"})
    assert bearer.status_code == 200, bearer.text
    header = httpx.delete(f"{guarded}/api/collections/keyed", headers={"X-API-Key": KEY})
    assert header.status_code == 200, header.text


def test_a_wrong_key_is_rejected_in_constant_time() -> None:
    """A 1 MB key: a plain `==` returns at the first differing byte (about 600 times
    faster for a wrong first byte than a wrong last one); this must not."""
    import statistics
    import time

    from search_app.auth import keys_match

    key = b"k" * (1 << 20)
    wrong_first, wrong_last = b"x" + key[1:], key[:-1] + b"x"

    def median_seconds(given: bytes) -> float:
        times = []
        for _ in range(300):
            started = time.perf_counter()
            keys_match(given, key)
            times.append(time.perf_counter() - started)
        return statistics.median(times)

    assert keys_match(key, key) and not keys_match(wrong_first, key) and not keys_match(wrong_last, key)
    median_seconds(wrong_last)  # warm up
    ratio = median_seconds(wrong_first) / median_seconds(wrong_last)
    assert 0.5 < ratio < 2, f"a wrong first byte takes {ratio:.3f} times as long as a wrong last byte"


def test_reading_routes_stay_open_with_a_key(guarded: str) -> None:
    assert httpx.get(f"{guarded}/api/collections").status_code == 200
    assert httpx.get(f"{guarded}/health").status_code == 200


def test_without_a_key_setting_mutations_are_open(site: Site) -> None:
    with site.client() as client:
        assert_error(client.delete("/api/collections/never_existed"), 404)  # reached the handler


TRAVERSALS = [
    "/etc/passwd",
    "../../../../../../etc/passwd",
    "{photos}/../../../../../../etc/passwd",
    "..%2F..%2F..%2F..%2Fetc%2Fpasswd",
    "%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "%252e%252e%252f%252e%252e%252fetc%252fpasswd",
    "{photos}/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "file:///etc/passwd",
    "/proc/self/environ",
    "{photos}",
]


@pytest.mark.parametrize("raw", TRAVERSALS)
def test_data_serves_only_indexed_paths(site: Site, raw: str) -> None:
    value = raw.replace("{photos}", str(site.root / "photos"))
    response = httpx.get(f"{site.url}/data?image_path={value}")  # sent as written: encodings intact
    assert_error(response, 404)


@pytest.mark.parametrize("path", [
    "/static/../../../../etc/passwd", "/static/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/static/..%2f..%2f..%2fapp.py", "/static/%252e%252e%252fapp.py", "/docs/assets/../../../../etc/passwd",
    "/docs/assets/%2e%2e%2f%2e%2e%2f__init__.py", "/api/images/..%2F..%2Fetc%2Fpasswd/file",
    "/api/images/%2e%2e/file", "/api/images/-1/file", "/api/images/99999999999999999999/thumbnail",
])
def test_static_and_id_routes_do_not_traverse(site: Site, path: str) -> None:
    response = httpx.get(site.url + path)
    assert response.status_code == 404, (path, response.status_code, response.text[:200])
    assert "root:" not in response.text


def test_symlinks_out_of_the_data_set_are_never_served(site: Site, photos: list, tmp_path: Path) -> None:
    folder = tmp_path / "links"
    paths = write_folder(folder, photos, 2, seed=31)
    os.symlink("/etc/passwd", folder / "evil.jpg")
    site.index(folder, "links")  # evil.jpg resolves to /etc/passwd: recorded failed, never indexed
    record = site.catalog.by_path("links", "/etc/passwd")
    assert record is not None and record.status == "failed"
    with site.client() as client:
        assert_error(client.get("/data", params={"image_path": str(folder / "evil.jpg")}), 404)
        assert_error(client.get(f"/api/images/{record.id}/file", params={"collection": "links"}), 404)
        # An indexed file swapped for a link after indexing is refused on every route.
        swapped = paths[0]
        victim = image_id(str(swapped))
        shutil.move(swapped, tmp_path / "moved.jpg")
        os.symlink("/etc/passwd", swapped)
        for route in (f"/api/images/{victim}/file", f"/api/images/{victim}/thumbnail"):
            assert_error(client.get(route, params={"collection": "links"}), 404)
        assert_error(client.get("/data", params={"image_path": str(swapped)}), 404)


def test_served_files_carry_no_sniff_headers(site: Site) -> None:
    response = httpx.get(f"{site.url}/api/images/{image_id(str(site.photos[0]))}/file",
                         params={"collection": COLLECTION})
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-security-policy"] == "default-src 'none'"
