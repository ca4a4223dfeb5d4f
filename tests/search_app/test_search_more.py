"""Beyond one image and top_k: several query images in one request, and a minimum score."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from imgsearch.discover import discover
from imgsearch.indexing import index_chunk
from search_app.api import MAX_QUERY_IMAGES
from tests.search_app.conftest import COLLECTION, Site
from tests.search_app.test_api import Q, assert_error, query_bytes


def search(site: Site, files: list[tuple[str, tuple[str, bytes]]], **params: object) -> dict:
    with site.client() as client:
        response = client.post("/api/search", params={**Q, **params}, files=files)
    assert response.status_code == 200, response.text
    return response.json()


def test_several_images_are_answered_in_their_order_as_each_alone(site: Site, tmp_path: Path) -> None:
    chosen = [5, 0, 17]
    queries = [(f"q{index}.jpg", query_bytes(site, index, tmp_path)) for index in chosen]
    together = search(site, [("image", query) for query in queries], top_k=4)
    assert "results" not in together and [q["image"] for q in together["queries"]] == [n for n, _ in queries]
    for index, query, answer in zip(chosen, queries, together["queries"], strict=True):
        alone = search(site, [("image", query)], top_k=4)["results"]
        assert answer["results"][0]["path"] == str(site.photos[index])
        assert [r["id"] for r in answer["results"]] == [r["id"] for r in alone]
        assert [r["score"] for r in answer["results"]] == pytest.approx([r["score"] for r in alone], abs=1e-4)


def test_several_images_share_one_forward_pass(site: Site, tmp_path: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    def passes() -> float:
        with site.client() as client:
            text = client.get("/metrics").text
        family = next(f for f in text_string_to_metric_families(text) if f.name == "imgsearch_query_batch_size")
        return next(s.value for s in family.samples if s.name.endswith("_count"))

    before = passes()
    search(site, [("image", (f"q{i}.jpg", query_bytes(site, i, tmp_path))) for i in range(6)])
    assert passes() == before + 1


def test_more_images_than_allowed_is_413_and_no_image_is_400(site: Site, tmp_path: Path) -> None:
    one = query_bytes(site, 1, tmp_path)
    with site.client() as client:
        too_many = client.post("/api/search", params=Q,
                               files=[("image", (f"{n}.jpg", one)) for n in range(MAX_QUERY_IMAGES + 1)])
        assert f"at most {MAX_QUERY_IMAGES} images" in assert_error(too_many, 413)["detail"]
        far_too_many = client.post("/api/search", params=Q,
                                   files=[("image", (f"{n}.jpg", b"x")) for n in range(MAX_QUERY_IMAGES + 5)])
        assert far_too_many.status_code in (400, 413) and set(far_too_many.json()) == {"error", "detail"}
        assert_error(client.post("/api/search", params=Q, files={"other": ("a.jpg", one)}), 400)


def test_a_bad_image_among_several_is_named(site: Site, tmp_path: Path) -> None:
    with site.client() as client:
        response = client.post("/api/search", params=Q, files=[
            ("image", ("good.jpg", query_bytes(site, 1, tmp_path))), ("image", ("notes.jpg", b"plain text"))])
    detail = assert_error(response, 415)["detail"]
    assert detail.startswith("image 2 (notes.jpg):")


def test_min_score_keeps_only_results_that_similar_and_never_pads(site: Site, tmp_path: Path) -> None:
    query = [("image", ("q.jpg", query_bytes(site, 9, tmp_path)))]
    everything = search(site, query, top_k=20)["results"]
    threshold = (everything[2]["score"] + everything[3]["score"]) / 2  # between the third and the fourth
    kept = search(site, query, top_k=20, min_score=f"{threshold:.6f}")["results"]
    assert [r["id"] for r in kept] == [r["id"] for r in everything[:3]]
    assert search(site, query, top_k=20, min_score="1")["results"] == []
    assert len(search(site, query, top_k=5, min_score="-1")["results"]) == 5
    with site.client() as client:  # a form field works as the query does
        form = client.post("/api/search", params=Q, data={"min_score": f"{threshold:.6f}", "top_k": "20"},
                           files=query).json()["results"]
    assert [r["id"] for r in form] == [r["id"] for r in kept]


def test_min_score_on_more_like_this_and_the_seed_search(site: Site, tmp_path: Path) -> None:
    from imgsearch.vectors import image_id

    image = image_id(str(site.photos[2]))
    with site.client() as client:
        similar = client.get(f"/api/images/{image}/similar", params={**Q, "top_k": 20}).json()["results"]
        cut = (similar[0]["score"] + similar[1]["score"]) / 2
        kept = client.get(f"/api/images/{image}/similar",
                          params={**Q, "top_k": 20, "min_score": f"{cut:.6f}"}).json()["results"]
        assert [r["id"] for r in kept] == [similar[0]["id"]]
        seed = client.post("/img/search", params={"table_name": COLLECTION, "min_score": "1"},
                           files={"image": ("q.jpg", query_bytes(site, 2, tmp_path))})
        assert seed.status_code == 200 and seed.json() == []


@pytest.mark.parametrize("value", ["1.5", "-2", "nan", "inf", "0,5", " 0.5", "high", "1e-1"])
def test_min_score_outside_minus_one_to_one_or_not_a_number_is_422(site: Site, tmp_path: Path, value: str) -> None:
    with site.client() as client:
        response = client.post("/api/search", params={**Q, "min_score": value},
                               files={"image": ("q.jpg", query_bytes(site, 1, tmp_path))})
        assert "min_score" in assert_error(response, 422)["detail"]


def test_a_record_carries_its_vector_when_asked(site: Site) -> None:
    import math

    from imgsearch.vectors import image_id

    image = image_id(str(site.photos[4]))
    with site.client() as client:
        plain = client.get(f"/api/images/{image}", params=Q).json()
        with_vector = client.get(f"/api/images/{image}", params={**Q, "include_vector": "true"}).json()
        refused = client.get(f"/api/images/{image}", params={**Q, "include_vector": "maybe"})
    assert "vector" not in plain and len(with_vector["vector"]) == 2048
    assert math.isclose(math.fsum(v * v for v in with_vector["vector"]), 1.0, abs_tol=1e-4)
    assert "include_vector" in assert_error(refused, 422)["detail"]


def test_more_like_these_less_like_those(site: Site) -> None:
    from imgsearch.vectors import image_id

    a, b, n = (image_id(str(site.photos[i])) for i in (2, 8, 13))

    def like(**given: object) -> list[dict]:
        with site.client() as client:
            response = client.get("/api/similar", params={**Q, "top_k": 100, **given})
        assert response.status_code == 200, response.text
        return response.json()["results"]

    with site.client() as client:
        one = client.get(f"/api/images/{a}/similar", params={**Q, "top_k": 100}).json()["results"]
    assert [(r["id"], round(r["score"], 4)) for r in like(positive=a)] == [(r["id"], round(r["score"], 4)) for r in one]
    both = like(positive=[a, b])
    assert {a, b}.isdisjoint(r["id"] for r in both) and len(both) == len(one) - 1
    # A negative example pushes its look-alikes down: each scores lower than without it.
    plain = {r["id"]: r["score"] for r in like(positive=a)}
    pushed = {r["id"]: r["score"] for r in like(positive=a, negative=n, negative_weight="1")}
    near_n = [r["id"] for r in like(positive=n)[:3] if r["id"] != a]
    assert n not in pushed and all(pushed[i] < plain[i] for i in near_n)


@pytest.mark.parametrize(("given", "status"), [
    ({}, 422), ({"positive": "x1"}, 422), ({"positive": [str(n) for n in range(1, 18)]}, 422),
    ({"positive": "123", "negative_weight": "2"}, 422), ({"positive": "123"}, 404),
    ({"positive": "9999999999999999"}, 404), ({"positive": "1", "collection": "nothing_here"}, 404),
])
def test_bad_examples_are_4xx(site: Site, given: dict, status: int) -> None:
    with site.client() as client:
        assert_error(client.get("/api/similar", params={**Q, **given}), status)


def test_query_expansion_per_request_on_search_and_more_like_this(site: Site, tmp_path: Path) -> None:
    """`expand=N` searches again with the query plus its first N answers: the photo a query was
    made from still comes first, top_k and min_score hold; a bad N is a 422 naming it."""
    from imgsearch.vectors import image_id

    query = [("image", ("q.jpg", query_bytes(site, 6, tmp_path)))]
    plain = search(site, query, top_k=8)["results"]
    expanded = search(site, query, top_k=8, expand=2)["results"]
    assert expanded[0]["path"] == plain[0]["path"] == str(site.photos[6]) and len(expanded) == 8
    assert [r["score"] for r in expanded] != [r["score"] for r in plain], "scores are to the expanded query"
    assert search(site, query, top_k=8, expand=0)["results"] == plain
    cut = (expanded[3]["score"] + expanded[4]["score"]) / 2  # between the fourth and the fifth
    assert [r["id"] for r in search(site, query, top_k=8, expand=2, min_score=f"{cut:.6f}")["results"]] == \
        [r["id"] for r in expanded[:4]]
    image = image_id(str(site.photos[6]))
    with site.client() as client:
        similar = client.get(f"/api/images/{image}/similar", params={**Q, "top_k": 5, "expand": "3"})
        assert similar.status_code == 200 and len(similar.json()["results"]) == 5
        assert image not in [r["id"] for r in similar.json()["results"]]
        for value in ("-1", "51", "two", "1.5"):
            response = client.post("/api/search", params={**Q, "expand": value}, files=query)
            assert "expand" in assert_error(response, 422)["detail"]
        assert "expand" in assert_error(client.get("/api/similar", params={**Q, "positive": image, "expand": "x"}),
                                        422)["detail"]


def test_an_app_with_scales_decodes_uploads_at_its_largest_size(site: Site, tmp_path: Path) -> None:
    """SCALES=1,1.414 (issue 27): uploads are decoded at 317 pixels and resized to 224 for the
    other pass; an indexed photo finds itself at a cosine of 1, the seed's route too, and the
    package's own (224-only) collection is refused by name, not answered with other vectors."""
    from imgsearch.resources import encoder_of
    from imgsearch.settings import load_settings
    from tests.search_app.conftest import live_server

    folder = tmp_path / "multi"
    folder.mkdir()
    for path in site.photos[:6]:
        (folder / path.name).write_bytes(path.read_bytes())
    multi = load_settings(SCALES="1,1.414")
    index_chunk(discover(folder).images, "multi_scale", site.catalog, site.vectors, encoder_of(multi))
    with live_server(site.make(SCALES="1,1.414")) as url, httpx.Client(base_url=url, timeout=60) as client:
        image = site.photos[4].read_bytes()
        found = client.post("/api/search", params={"collection": "multi_scale", "top_k": 3}, files={"image": image})
        assert found.status_code == 200, found.text
        first = found.json()["results"][0]
        assert first["path"] == str(folder / site.photos[4].name) and first["score"] > 0.9999
        seed = client.post("/img/search", params={"table_name": "multi_scale"}, files={"image": image},
                           data={"topk": "2"})
        assert seed.status_code == 200 and seed.json()[0][0] == str(folder / site.photos[4].name), seed.text
        refused = client.post("/api/search", params={"collection": COLLECTION}, files={"image": image})
        assert "SCALES=1" in assert_error(refused, 409)["detail"]
