"""GET /api/collections/{name}/duplicates on planted copies."""

from __future__ import annotations


import pytest

from tests.search_app.conftest import Site
from tests.search_app.test_api import assert_error
from tests.test_duplicates import plant


@pytest.fixture(scope="module")
def planted(site: Site, photos: list, tmp_path_factory: pytest.TempPathFactory) -> list[set[str]]:
    folder = tmp_path_factory.mktemp("planted") / "library"
    expected, _ = plant(folder, photos)
    site.index(folder, "planted")
    return expected


def test_the_planted_groups_are_answered_largest_first(site: Site, planted: list[set[str]]) -> None:
    with site.client() as client:
        response = client.get("/api/collections/planted/duplicates")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["min_score"] == 0.93 and body["collection"] == "planted" and body["took_ms"] > 0
    assert sorted(sorted(i["path"] for i in g["images"]) for g in body["groups"]) == sorted(sorted(e) for e in planted)
    assert [g["size"] for g in body["groups"]] == [3, 3, 2]
    first = body["groups"][0]["images"][0]
    assert first["score"] == pytest.approx(1.0, abs=1e-5) and first["width"] == 500
    with site.client() as client:
        assert client.get(first["thumbnail_url"]).status_code == 200
        exact = client.get("/api/collections/planted/duplicates", params={"min_score": "0.99999"}).json()
    assert [g["size"] for g in exact["groups"]] == [2, 2]


@pytest.mark.parametrize("value", ["0.4", "-1", "1.01", "x", "nan"])
def test_a_min_score_below_half_or_not_a_score_is_422(site: Site, planted: list[set[str]], value: str) -> None:
    with site.client() as client:
        response = client.get("/api/collections/planted/duplicates", params={"min_score": value})
    assert "min_score" in assert_error(response, 422)["detail"]


def test_an_unknown_collection_is_404(site: Site) -> None:
    with site.client() as client:
        assert_error(client.get("/api/collections/nothing_here/duplicates"), 404)
        assert_error(client.get("/api/collections/bad-name/duplicates"), 422)
