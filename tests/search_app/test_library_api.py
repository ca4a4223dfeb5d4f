"""Browsing (`/api/collections/{name}/images`), resolving duplicate groups with their undo, and
the runs panel's `/api/runs`, over a real server on real stores and a real Prefect API."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.search_app.conftest import COLLECTION, Site
from tests.search_app.test_api import assert_error
from tests.test_duplicates import plant


@pytest.fixture(scope="module")
def planted(site: Site, photos: list, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("library-api") / "library"
    plant(folder, photos)
    site.index(folder, "resolvable")
    return folder


def test_browse_pages_through_a_collection_newest_first(site: Site) -> None:
    seen, after = [], None
    with site.client() as client:
        while True:
            page = client.get(f"/api/collections/{COLLECTION}/images", params={"limit": 8, "after": after or ""})
            assert page.status_code == 200, page.text
            body = page.json()
            seen += body["images"]
            if body["next"] is None:
                break
            after = body["next"]
        assert sorted(image["path"] for image in seen) == sorted(map(str, site.photos))
        moments = [image["indexed_at"] for image in seen]
        assert moments == sorted(moments, reverse=True) and moments[0].endswith("+00:00")
        first = seen[0]
        assert client.get(first["thumbnail_url"]).status_code == 200
        label = first["labels"][0]
        labelled = client.get(f"/api/collections/{COLLECTION}/images", params={"label": label}).json()["images"]
        assert labelled and all(label in image["labels"] for image in labelled)
        assert len(labelled) == sum(label in image["labels"] for image in seen)
        detail = client.get(f"/api/collections/{COLLECTION}").json()
        assert sum(detail["folders"].values()) == len(seen)
        folder = next(iter(detail["folders"]))
        inside = client.get(f"/api/collections/{COLLECTION}/images", params={"folder": folder}).json()["images"]
        assert len(inside) == detail["folders"][folder] and all(i["folder"] == folder for i in inside)


@pytest.mark.parametrize(("query", "status"), [({"limit": "0"}, 422), ({"limit": "501"}, 422),
                                                ({"after": "not-a-cursor"}, 422), ({"after": "1-99999999999999999999"}, 422), ({"label": "\x01"}, 422),
                                                ({"folder": "x" * 5000}, 422)])
def test_bad_browse_requests_are_4xx(site: Site, query: dict, status: int) -> None:
    with site.client() as client:
        assert_error(client.get(f"/api/collections/{COLLECTION}/images", params=query), status)


def test_browse_of_an_unknown_collection_is_404(site: Site) -> None:
    with site.client() as client:
        assert_error(client.get("/api/collections/nothing_here/images"), 404)
        assert_error(client.get("/api/collections/bad-name/images"), 422)


def test_resolve_a_group_then_undo_it(site: Site, planted: Path, tmp_path: Path) -> None:
    with site.client() as client:
        group = client.get("/api/collections/resolvable/duplicates").json()["groups"][0]
        keep, *others = [image["id"] for image in group["images"]]
        paths = {image["id"]: image["path"] for image in group["images"]}
        count = client.get("/api/collections/resolvable").json()["count"]
        aside = tmp_path / "aside"

        planned = client.post("/api/collections/resolvable/duplicates/resolve",
                              json={"keep": keep, "remove": others, "move_to": str(aside), "dry_run": True}).json()
        assert planned["dry_run"] and planned["undo_url"] is None and not aside.exists()
        assert client.get("/api/collections/resolvable").json()["count"] == count

        done = client.post("/api/collections/resolvable/duplicates/resolve",
                           json={"keep": keep, "remove": others, "move_to": str(aside)})
        assert done.status_code == 200, done.text
        body = done.json()
        assert body["keep"] == {"id": keep, "path": paths[keep]} and body["undo_url"].startswith("/api/resolutions/")
        assert [(r["id"], r["moved_to"]) for r in body["removed"]] == [
            (i, str(aside / Path(paths[i]).name)) for i in others]
        assert client.get("/api/collections/resolvable").json()["count"] == count - len(others)
        assert_error(client.get(f"/api/images/{others[0]}", params={"collection": "resolvable"}), 404)
        assert not os.path.exists(paths[others[0]]) and (aside / Path(paths[others[0]]).name).exists()

        undone = client.post(body["undo_url"])
        assert undone.json() == {"collection": "resolvable", "restored": len(others)}
        assert client.get("/api/collections/resolvable").json()["count"] == count
        assert client.get(f"/api/images/{others[0]}", params={"collection": "resolvable"}).status_code == 200
        assert os.path.exists(paths[others[0]]) and list(aside.iterdir()) == []
        similar = client.get(f"/api/images/{keep}/similar", params={"collection": "resolvable"}).json()
        assert others[0] in [result["id"] for result in similar["results"]]
        assert_error(client.post(body["undo_url"]), 404)  # once


@pytest.mark.parametrize(("body", "status"), [
    ({"keep": 1}, 422), ({"keep": "1", "remove": [2]}, 422), ({"keep": 1, "remove": []}, 422),
    ({"keep": 1, "remove": [True]}, 422), ({"keep": 1, "remove": [2], "move_to": "relative"}, 422),
    ({"keep": 1, "remove": [2], "delete_files": "yes"}, 422), ({"keep": 1, "remove": [2]}, 404),
    ({"keep": 1, "remove": [2], "move_to": "/tmp/x", "delete_files": True}, 422),
])
def test_bad_resolutions_are_4xx(site: Site, planted: Path, body: dict, status: int) -> None:
    with site.client() as client:
        assert_error(client.post("/api/collections/resolvable/duplicates/resolve", json=body), status)
        assert_error(client.post("/api/collections/resolvable/duplicates/resolve", content=b"[1"), 400)
        assert_error(client.post("/api/collections/bad-name/duplicates/resolve", json=body), 422)


def test_move_to_stays_inside_index_roots(site: Site, planted: Path, tmp_path: Path) -> None:
    from tests.search_app.conftest import live_server

    with live_server(site.make(INDEX_ROOTS=str(tmp_path / "allowed"))) as url:
        import httpx

        response = httpx.post(f"{url}/api/collections/resolvable/duplicates/resolve",
                              json={"keep": 1, "remove": [2], "move_to": "/etc/aside"}, timeout=60)
    assert_error(response, 403)


def test_recent_runs_come_from_the_prefect_api(site: Site, photos: list, tmp_path: Path) -> None:
    import time

    from tests.conftest import write_folder

    write_folder(tmp_path / "run", photos, 3, seed=31)
    with site.client() as client:
        run_id = client.post("/api/index", json={"path": str(tmp_path / "run"), "collection": "runs_panel"}).json()["run_id"]
        deadline = time.monotonic() + 180
        while client.get(f"/api/index/{run_id}").json()["state"] in ("PENDING", "RUNNING"):
            assert time.monotonic() < deadline
            time.sleep(0.5)
        runs = client.get("/api/runs", params={"limit": 50}).json()["runs"]
        mine = next(run for run in runs if run["id"] == run_id)
        assert mine["name"] == "index run into runs_panel" and mine["flow"] == "index-images"
        assert mine["state"] == "COMPLETED" and mine["figures"]["indexed"] == 3 and mine["start_time"]
        assert mine["parameters"] == {"path": str(tmp_path / "run"), "collection": "runs_panel"}
        assert len(client.get("/api/runs", params={"limit": 1}).json()["runs"]) == 1
        assert_error(client.get("/api/runs", params={"limit": "0"}), 422)
