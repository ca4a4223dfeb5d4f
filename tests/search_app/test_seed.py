"""The bootcamp server's routes, as its web client and scripts call them."""

from __future__ import annotations

import time
from pathlib import Path

from imgsearch.samples import recompressed_copy
from tests.conftest import write_folder
from tests.search_app.conftest import COLLECTION, PHOTOS, Site
from tests.search_app.test_api import assert_error


def test_img_search_returns_exactly_topk_path_distance_pairs(site: Site, tmp_path: Path) -> None:
    query = recompressed_copy(site.photos[9], tmp_path / "q.jpg", scale=0.6, quality=45).read_bytes()
    with site.client() as client:
        for topk in (1, 5, PHOTOS):
            rows = client.post("/img/search", params={"table_name": COLLECTION}, data={"topk": str(topk)},
                               files={"image": ("q.jpg", query, "image/jpeg")}).json()
            assert len(rows) == topk and all(len(row) == 2 for row in rows)
            distances = [row[1] for row in rows]
            assert distances == sorted(distances) and 0 <= distances[0] < 0.1
            assert rows[0][0] == str(site.photos[9])


def test_img_count_drop_and_data(site: Site, photos: list, tmp_path: Path) -> None:
    with site.client() as client:
        assert client.post("/img/count", params={"table_name": COLLECTION}).json() == PHOTOS
        served = client.get("/data", params={"image_path": str(site.photos[0])})
        assert served.status_code == 200 and served.content == site.photos[0].read_bytes()
        write_folder(tmp_path / "seed", photos, 3, seed=3)
        site.index(tmp_path / "seed", "seed_drop")
        assert client.post("/img/count", params={"table_name": "seed_drop"}).json() == 3
        assert client.post("/img/drop", params={"table_name": "seed_drop"}).status_code == 200
        assert client.post("/img/count", params={"table_name": "seed_drop"}).json() == 0
        assert_error(client.post("/img/count", params={"table_name": "x'; DROP TABLE images; --"}), 422)


def test_img_load_starts_a_run_and_progress_follows_it(site: Site, photos: list, tmp_path: Path) -> None:
    write_folder(tmp_path / "load", photos, 5, seed=11)
    with site.client() as client:
        started = client.post("/img/load", json={"Table": "seed_load", "File": str(tmp_path / "load")})
        assert started.status_code == 200 and "Started loading data" in started.json()
        status_url = started.headers["location"]
        deadline = time.monotonic() + 180
        while client.get(status_url).json()["state"] in ("PENDING", "RUNNING"):
            assert time.monotonic() < deadline
            time.sleep(0.5)
        assert client.get("/progress").json() == "current: 5, total: 5"
        assert client.post("/img/count", params={"table_name": "seed_load"}).json() == 5
        assert_error(client.post("/img/load", json={"File": "/definitely/not/here"}), 404)


def test_img_upload_indexes_one_image(site: Site, tmp_path: Path) -> None:
    data = recompressed_copy(site.photos[1], tmp_path / "up.jpg", scale=0.5).read_bytes()
    with site.client() as client:
        answer = client.post("/img/upload", params={"table_name": "seed_upload"},
                             files={"image": ("up.jpg", data)})
        assert answer.status_code == 200 and answer.json().startswith("Successfully loaded data: ")
        assert client.post("/img/count", params={"table_name": "seed_upload"}).json() == 1
        again = client.post("/img/upload", params={"table_name": "seed_upload"}, files={"image": ("x.jpg", data)})
        assert again.json() == answer.json(), "the same bytes are stored once, by content"
        assert_error(client.post("/img/upload", files={"image": ("x.txt", b"plain text")}), 415)
        assert_error(client.post("/img/upload", params={"url": "http://example.com/a.jpg"},
                                 files={"image": ("a.jpg", data)}), 400)
