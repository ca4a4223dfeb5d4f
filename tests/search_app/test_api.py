"""The JSON API against a real uvicorn server."""

from __future__ import annotations

import io
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image

from imgsearch.discover import discover
from imgsearch.resources import encoder as get_encoder
from imgsearch.indexing import index_chunk
from imgsearch.samples import recompressed_copy
from imgsearch.vectors import VectorStore, image_id
from tests.conftest import write_folder
from tests.search_app.conftest import COLLECTION, PHOTOS, Site

Q = {"collection": COLLECTION}


def query_bytes(site: Site, index: int, tmp_path: Path) -> bytes:
    return recompressed_copy(site.photos[index], tmp_path / f"q{index}.jpg", scale=0.7, quality=50).read_bytes()


def assert_error(response: object, status: int) -> dict:
    assert response.status_code == status, (response.status_code, response.text)  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert set(body) == {"error", "detail"} and body["detail"]
    return body


def test_search_finds_the_original_of_a_recompressed_copy(site: Site, tmp_path: Path) -> None:
    with site.client() as client:
        for index in (0, 11, 23):
            response = client.post("/api/search", params={**Q, "top_k": 5},
                                   files={"image": ("q.jpg", query_bytes(site, index, tmp_path), "image/jpeg")})
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["results"][0]["path"] == str(site.photos[index]) and body["took_ms"] > 0
            first = body["results"][0]
            assert first["id"] == image_id(str(site.photos[index]))
            assert first["image_url"] == f"/api/images/{first['id']}/file?collection={COLLECTION}"
            assert first["labels"] == [site.photos[index].parent.name]


@pytest.mark.parametrize("top_k", [1, 7, PHOTOS])
def test_top_k_is_honoured_exactly(site: Site, tmp_path: Path, top_k: int) -> None:
    with site.client() as client:
        form = {"top_k": str(top_k), "collection": COLLECTION}
        body = client.post("/api/search", data=form,
                           files={"image": ("q.jpg", query_bytes(site, 3, tmp_path))}).json()
    scores = [result["score"] for result in body["results"]]
    assert len(scores) == top_k and scores == sorted(scores, reverse=True)


def test_label_filter(site: Site, tmp_path: Path) -> None:
    label = site.photos[4].parent.name
    with site.client() as client:
        body = client.post("/api/search", params={**Q, "top_k": 20, "label": label},
                           files={"image": ("q.jpg", query_bytes(site, 4, tmp_path))}).json()
    expected = sum(1 for path in site.photos if path.parent.name == label)
    assert len(body["results"]) == expected and all(r["labels"] == [label] for r in body["results"])


def test_more_like_this_and_records(site: Site) -> None:
    target = image_id(str(site.photos[5]))
    with site.client() as client:
        similar = client.get(f"/api/images/{target}/similar", params={**Q, "top_k": 4}).json()
        assert len(similar["results"]) == 4 and target not in [r["id"] for r in similar["results"]]
        record = client.get(f"/api/images/{target}", params=Q).json()
        assert record["path"] == str(site.photos[5]) and record["status"] == "indexed"
        assert (record["width"], record["height"]) == (500, 375)
        original = client.get(f"/api/images/{target}/file", params=Q)
        assert original.status_code == 200 and original.content == site.photos[5].read_bytes()
        assert original.headers["content-type"] == "image/jpeg"
        assert original.headers["x-content-type-options"] == "nosniff"
        thumb = client.get(f"/api/images/{target}/thumbnail", params={**Q, "size": 100})
        assert thumb.headers["content-type"] == "image/jpeg"
        assert max(Image.open(io.BytesIO(thumb.content)).size) == 128  # the next size the cache keeps
        again = client.get(f"/api/images/{target}/thumbnail", params={**Q, "size": 100})
        assert again.content == thumb.content
        assert_error(client.get(f"/api/images/{target}/thumbnail", params={**Q, "size": 5000}), 422)


def test_collections_and_labels(site: Site) -> None:
    with site.client() as client:
        listing = client.get("/api/collections").json()
        assert {"name": COLLECTION, "count": PHOTOS} in listing["collections"]
        detail = client.get(f"/api/collections/{COLLECTION}").json()
        assert detail["count"] == detail["vectors"] == PHOTOS and detail["failed"] == 0
        assert sum(detail["labels"].values()) == PHOTOS
        assert_error(client.get("/api/collections/nothing_here"), 404)
        assert_error(client.get("/api/collections/bad-name"), 422)


def test_delete_an_image_and_drop_a_collection(site: Site, photos: list, tmp_path: Path) -> None:
    folder = tmp_path / "doomed"
    paths = write_folder(folder, photos, 4, seed=99)
    site.index(folder, "doomed")
    victim, survivor = image_id(str(paths[0])), image_id(str(paths[1]))
    thumbnails = site.settings.thumbnail_dir / "doomed"
    with site.client() as client:
        for image in (victim, survivor):
            assert client.get(f"/api/images/{image}/thumbnail", params={"collection": "doomed"}).status_code == 200
        assert client.delete(f"/api/images/{victim}", params={"collection": "doomed"}).json() == {
            "deleted": victim, "collection": "doomed"}
        assert [p.name.split("-")[0] for p in thumbnails.iterdir()] == [str(survivor)], "its thumbnail went too"
        assert client.get("/api/collections/doomed").json()["count"] == 3
        assert_error(client.get(f"/api/images/{victim}", params={"collection": "doomed"}), 404)
        assert client.delete("/api/collections/doomed").json() == {"dropped": "doomed"}
        assert not thumbnails.exists()
        assert_error(client.get("/api/collections/doomed"), 404)
        assert_error(client.delete("/api/collections/doomed"), 404)


def test_index_runs_in_the_background(site: Site, photos: list, tmp_path: Path) -> None:
    folder = tmp_path / "incoming"
    write_folder(folder, photos, 6, seed=5)
    (folder / "broken.png").write_text("not an image")
    with site.client() as client:
        started = client.post("/api/index", json={"path": str(folder), "collection": "incoming"})
        assert started.status_code == 202, started.text
        run_id = started.json()["run_id"]
        deadline = time.monotonic() + 180
        while (run := client.get(f"/api/index/{run_id}").json())["state"] in ("PENDING", "RUNNING"):
            assert time.monotonic() < deadline, run
            time.sleep(0.5)
        assert run["state"] == "COMPLETED", run
        assert (run["processed"], run["total"], run["failed"]) == (7, 7, 1)
        assert run["summary"]["indexed"] == 6
        assert client.get("/api/collections/incoming").json()["count"] == 6
        assert_error(client.get("/api/index/00000000-0000-0000-0000-000000000000"), 404)
        assert_error(client.get("/api/index/not-a-run"), 404)


def test_a_collection_of_another_encoder_is_refused(site: Site, photos: list, tmp_path: Path) -> None:
    """Vectors of two encoders never mix: searching it is 409, indexing into it fails the run;
    both say which precision the collection holds."""
    folder = tmp_path / "quantised"
    paths = write_folder(folder, photos, 3, seed=31)
    # Made by another process (its own store: the app reads the record from Milvus) with
    # `PRECISION=int8`: written here with fp32, then recorded as int8.
    other = VectorStore(site.vectors.uri)
    encoder = get_encoder(site.settings.cache_dir / "resnet50_imagenet_notop.weights.h5")
    index_chunk(discover(folder).images, "quantised", site.catalog, other, encoder)
    other.client.alter_collection_properties("quantised", properties={"imgsearch.encoder": "resnet50/avg/int8"})
    with site.client() as client:
        refused = client.post("/api/search", params={"collection": "quantised"},
                              files={"image": paths[0].read_bytes()})
        assert "PRECISION=int8" in assert_error(refused, 409)["detail"]
        seed = client.post("/img/search", params={"table_name": "quantised"}, files={"image": paths[0].read_bytes()},
                           data={"topk": "2"})
        assert "PRECISION=int8" in assert_error(seed, 409)["detail"]
        (folder / "new.jpg").write_bytes(recompressed_copy(paths[0], tmp_path / "n.jpg").read_bytes())
        started = client.post("/api/index", json={"path": str(folder), "collection": "quantised"})
        run_id = started.json()["run_id"]
        deadline = time.monotonic() + 180
        while (run := client.get(f"/api/index/{run_id}").json())["state"] in ("PENDING", "RUNNING"):
            assert time.monotonic() < deadline, run
            time.sleep(0.5)
        assert run["state"] == "FAILED" and "PRECISION=int8" in run["error"], run
        assert client.get("/api/collections/quantised").json()["count"] == 3


@pytest.mark.parametrize(
    ("body", "status"),
    [({"path": "/no/such/folder"}, 404), ({"path": ""}, 422), ({"path": "a\x00b"}, 422), ({"path": 5}, 422), ({}, 422),
     ({"path": "/tmp", "collection": "bad name"}, 422)],
)
def test_index_refuses_bad_requests(site: Site, body: dict, status: int) -> None:
    with site.client() as client:
        assert_error(client.post("/api/index", json=body), status)


def test_index_refuses_a_body_that_is_not_json(site: Site) -> None:
    with site.client() as client:
        assert_error(client.post("/api/index", content=b"{nope", headers={"content-type": "application/json"}), 400)
        assert_error(client.post("/api/index", json=[1, 2]), 400)


def png(size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (1, 2, 3)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("upload", "status"),
    [(b"", 400), (b"hello world", 415), (b"<html><body>hi</body></html>", 415),
     (b"<svg xmlns='http://www.w3.org/2000/svg'></svg>", 415), (png((64, 64))[:60], 422)],
)
def test_bad_uploads_are_4xx_json(site: Site, upload: bytes, status: int) -> None:
    with site.client() as client:
        assert_error(client.post("/api/search", files={"image": ("x.jpg", upload)}), status)


def jpeg(size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 60)).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def jpeg_zip_polyglot() -> bytes:
    """A valid JPEG with a ZIP archive appended: both tools open it."""
    import zipfile

    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("../../evil.sh", "echo pwned")
    return jpeg((64, 48)) + archive.getvalue()


@pytest.mark.parametrize(
    ("upload", "status"),
    [(jpeg((300, 200))[:400], 422), (jpeg((300, 200))[:-200] + b"\0" * 10, 422),
     (b"\xff\xd8\xff\xe0" + b"\0" * 100, 415), (b"PK\x03\x04" + b"\0" * 100, 415),
     (b"GIF89a" + b"\0" * 20, 415), (b"%PDF-1.4\n" * 10, 415)],
    ids=["truncated-jpeg-header", "jpeg-cut-short", "jpeg-magic-only", "zip", "gif-magic-only", "pdf"],
)
def test_hostile_uploads_are_4xx_json(site: Site, upload: bytes, status: int) -> None:
    with site.client() as client:
        assert_error(client.post("/api/search", files={"image": ("x.jpg", upload)}), status)


@pytest.mark.parametrize("upload", [jpeg((1, 1)), png((1, 1)), jpeg_zip_polyglot()],
                         ids=["1x1-jpeg", "1x1-png", "jpeg-zip-polyglot"])
def test_odd_but_valid_images_are_searched(site: Site, upload: bytes) -> None:
    with site.client() as client:
        response = client.post("/api/search", params={**Q, "top_k": 2}, files={"image": ("x.jpg", upload)})
    assert response.status_code == 200, response.text
    assert len(response.json()["results"]) == 2


@pytest.mark.parametrize(
    "name", ["it's", 'a"b', "../etc", "..", "a/b", "фото", "😀", "a" * 300, "a b", "a;DROP TABLE images"],
)
def test_hostile_collection_names_are_422(site: Site, name: str) -> None:
    with site.client() as client:
        assert_error(client.post("/api/search", params={"collection": name},
                                 files={"image": ("x.png", png((8, 8)))}), 422)
        # In the path, a name with "/" or ".." does not reach the route at all: 404.
        response = client.get("/api/collections/" + httpx_quote(name))
        assert_error(response, 404 if "/" in name or name == ".." else 422)
        assert_error(client.post("/api/index", json={"path": "/tmp", "collection": name}), 422)


def httpx_quote(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")


@pytest.mark.parametrize("top_k", ["0", "-1", "101", "1000000000", "abc", "1.5", "1_0", "٣", "1e9", "+5", " 5"])
def test_bad_top_k_is_422(site: Site, top_k: str) -> None:
    with site.client() as client:
        response = client.post("/api/search", params={"top_k": top_k}, files={"image": ("x.png", png((8, 8)))})
        assert "top_k" in assert_error(response, 422)["detail"]
        form = client.post("/api/search", data={"top_k": top_k}, files={"image": ("x.png", png((8, 8)))})
        assert "top_k" in assert_error(form, 422)["detail"]


def test_an_empty_top_k_means_the_default_as_documented(site: Site) -> None:
    with site.client() as client:
        for sent in ({"params": {**Q, "top_k": ""}}, {"params": Q, "data": {"top_k": ""}}):
            response = client.post("/api/search", files={"image": ("x.png", png((8, 8)))}, **sent)
            assert len(response.json()["results"]) == site.settings.top_k


def test_request_shape_errors(site: Site) -> None:
    with site.client() as client:
        assert_error(client.post("/api/search", data={"top_k": "3"}, files={"other": ("x", b"1")}), 400)
        assert_error(client.post("/api/search", json={"image": "x"}), 415)
        assert_error(client.get("/api/search"), 405)
        assert_error(client.put("/api/images/1", params=Q), 405)  # HTTPEndpoint: GET and DELETE only
        assert_error(client.post("/api/collections/x"), 405)
        assert_error(client.get("/api/nothing"), 404)
        assert_error(client.post("/api/search", params={"collection": "nope_nope"},
                                 files={"image": ("x.png", png((8, 8)))}), 404)
        assert_error(client.post("/api/search", params={"collection": "../etc"},
                                 files={"image": ("x.png", png((8, 8)))}), 422)
        assert_error(client.post("/api/search", files={"image": ("x.png", png((8, 8)))},
                                 params={"label": "a\x01b"}), 422)


def test_uploads_over_the_limit_are_413(site: Site) -> None:
    big = b"\xff\xd8" + b"0" * (4 * 1024 * 1024)  # MAX_UPLOAD_MB is 3 here
    with site.client() as client:
        assert_error(client.post("/api/search", files={"image": ("big.jpg", big)}), 413)

        def chunks():  # no Content-Length: the limit is counted as the body streams
            yield b"--b\r\nContent-Disposition: form-data; name=\"image\"; filename=\"x\"\r\n\r\n"
            for _ in range(40):
                yield b"0" * (128 * 1024)
            yield b"\r\n--b--\r\n"

        response = client.post("/api/search", content=chunks(),
                               headers={"content-type": "multipart/form-data; boundary=b"})
        assert_error(response, 413)


def test_a_50_mb_upload_is_413_without_reading_it_all(site: Site) -> None:
    big = jpeg((64, 64)) + b"\0" * (50 * 1024 * 1024)
    with site.client() as client:
        assert_error(client.post("/api/search", files={"image": ("big.jpg", big)}), 413)
        assert_error(client.post("/img/search", files={"image": ("big.jpg", big)}), 413)


def test_decompression_bomb_is_413(site: Site) -> None:
    from tests.test_decode import png_header_only

    with site.client() as client:
        assert_error(client.post("/api/search", files={"image": ("bomb.png", png_header_only(30000, 30000))}), 413)


def test_concurrent_queries_share_forward_passes(site: Site, tmp_path: Path) -> None:
    data = query_bytes(site, 2, tmp_path)

    def one(_: int) -> str:
        with site.client() as client:
            body = client.post("/api/search", params={**Q, "top_k": 1}, files={"image": ("q.jpg", data)}).json()
        return body["results"][0]["path"]

    with ThreadPoolExecutor(8) as pool:
        found = list(pool.map(one, range(16)))
    assert found == [str(site.photos[2])] * 16
    with site.client() as client:
        metrics = client.get("/metrics").text
    batched = [line for line in metrics.splitlines() if line.startswith("imgsearch_query_batch_size_bucket")]
    one_only = next(line for line in batched if 'le="1.0"' in line)
    total = next(line for line in batched if 'le="+Inf"' in line)
    assert float(one_only.split()[-1]) < float(total.split()[-1]), "some passes carried several queries"


def test_health_and_metrics(site: Site) -> None:
    with site.client() as client:
        assert client.get("/health").json() == {"status": "ok", "milvus": "ok", "database": "ok", "model": "ok"}
        text = client.get("/metrics").text
    assert 'imgsearch_http_requests_total{method="POST",route="/api/search",status="200"}' in text
    assert 'imgsearch_http_request_seconds_bucket{le="0.1",method="POST",route="/api/search"}' in text
    assert "imgsearch_search_seconds_count" in text
    assert f'imgsearch_collection_images{{collection="{COLLECTION}"}} {PHOTOS}.0' in text
