"""The bootcamp server's routes, as its web client and scripts call them."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import httpx
import pytest

from imgsearch.samples import recompressed_copy
from tests.conftest import write_folder
from tests.search_app.conftest import COLLECTION, PHOTOS, Site, live_server
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


def test_a_seed_client_session_load_progress_count_data_upload_search_drop(
        site: Site, photos: list, tmp_path: Path) -> None:
    """The bootcamp client's order of calls, on an app of its own (so /progress is about this load)."""
    folder = tmp_path / "seed_folder"
    files = sorted(write_folder(folder, photos, 20, seed=21))
    with live_server(site.make()) as url, httpx.Client(base_url=url, timeout=300) as client:
        seen: list[str] = []
        loading = threading.Event()

        def watch_progress() -> None:
            with httpx.Client(base_url=url, timeout=30) as watcher:
                while loading.is_set():
                    seen.append(watcher.get("/progress").json())
                    time.sleep(0.05)

        loading.set()
        watcher = threading.Thread(target=watch_progress)
        watcher.start()
        try:
            loaded = client.post("/img/load", json={"Table": "seed_session", "File": str(folder)})
        finally:
            loading.clear()
            watcher.join()
        assert (loaded.status_code, loaded.json()) == (200, "Successfully loaded data!")
        assert client.get("/progress").json() == "current: 20, total: 20"
        counts = [tuple(int(n) for n in re.findall(r"\d+", text)) for text in seen]
        assert all(total in (0, 20) and current <= max(total, 0) for current, total in counts), seen
        assert (0, 20) in counts or any(0 < current < 20 for current, _ in counts), \
            f"progress during the load showed its total: {seen}"
        assert [c for c, _ in counts] == sorted(c for c, _ in counts), "progress never goes back"

        assert client.post("/img/count", params={"table_name": "seed_session"}).json() == 20
        one = files[3]
        served = client.get("/data", params={"image_path": f"{folder}/{one.parent.name}/{one.name}"})
        assert served.status_code == 200 and served.content == one.read_bytes()

        upload = recompressed_copy(site.photos[2], tmp_path / "upload.jpg", scale=0.5).read_bytes()
        uploaded = client.post("/img/upload", params={"table_name": "seed_session"},
                               files={"image": ("upload.jpg", upload)})
        assert uploaded.status_code == 200 and uploaded.json().startswith("Successfully loaded data: ")
        assert client.post("/img/count", params={"table_name": "seed_session"}).json() == 21

        query = recompressed_copy(files[7], tmp_path / "q.jpg", scale=0.6, quality=45).read_bytes()
        rows = client.post("/img/search", params={"table_name": "seed_session"}, data={"topk": "6"},
                           files={"image": ("q.jpg", query, "image/jpeg")}).json()
        assert len(rows) == 6 and rows[0][0] == str(files[7])
        assert [row[1] for row in rows] == sorted(row[1] for row in rows)

        dropped = client.post("/img/drop", params={"table_name": "seed_session"})
        assert dropped.status_code == 200
        assert client.post("/img/count", params={"table_name": "seed_session"}).json() == 0
        assert_error(client.post("/img/load", json={"File": "/definitely/not/here"}), 404)
        assert_error(client.post("/img/load", params={"wait": "maybe"}, json={"File": str(folder)}), 422)


def test_img_load_goes_on_when_the_client_disconnects(site: Site, photos: list, tmp_path: Path) -> None:
    write_folder(tmp_path / "gone", photos, 12, seed=23)
    with site.client() as client:
        with pytest.raises(httpx.ReadTimeout):
            client.post("/img/load", json={"Table": "seed_gone", "File": str(tmp_path / "gone")}, timeout=0.5)
        deadline = time.monotonic() + 180
        while client.post("/img/count", params={"table_name": "seed_gone"}).json() < 12:
            assert time.monotonic() < deadline, "the load stopped with its client"
            time.sleep(0.5)


def test_img_load_with_wait_false_answers_at_once(site: Site, photos: list, tmp_path: Path) -> None:
    write_folder(tmp_path / "load", photos, 5, seed=11)
    with site.client() as client:
        started = client.post("/img/load", params={"wait": "false"},
                              json={"Table": "seed_load", "File": str(tmp_path / "load")})
        assert started.status_code == 202 and "Started loading data" in started.json()
        status_url = started.headers["location"]
        deadline = time.monotonic() + 180
        while client.get(status_url).json()["state"] in ("PENDING", "RUNNING"):
            assert time.monotonic() < deadline
            time.sleep(0.5)
        assert client.post("/img/count", params={"table_name": "seed_load"}).json() == 5


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
