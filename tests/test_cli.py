"""The `imgsearch` console script, run as a user runs it: a real process each time."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from imgsearch.samples import Photo, recompressed_copy
from tests.conftest import write_folder

IMGSEARCH = str(Path(sys.executable).parent / "imgsearch")
pytestmark = pytest.mark.usefixtures("weights")


@pytest.fixture(scope="module")
def prefect_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("prefect-home")


@pytest.fixture
def run(tmp_path: Path, prefect_home: Path, prefect_api_url: str):  # type: ignore[no-untyped-def]
    """`imgsearch ARGS` as a process, reporting its flow runs to the session's Prefect API; with
    `own_api=True` as a user runs it first, with no PREFECT_API_URL (Prefect's temporary API)."""
    base = {key: value for key, value in os.environ.items()
            if not key.startswith(("MILVUS_", "MYSQL_", "DATABASE_URL", "PREFECT_API", "DEFAULT_TABLE"))}
    base.update(DATA_DIR=str(tmp_path / "data"), PREFECT_HOME=str(prefect_home),
                PREFECT_SERVER_ANALYTICS_ENABLED="false")

    def invoke(*arguments: str, own_api: bool = False, **env: str) -> subprocess.CompletedProcess[str]:
        api = {} if own_api else {"PREFECT_API_URL": prefect_api_url}
        return subprocess.run([IMGSEARCH, *arguments], capture_output=True, text=True,
                              env={**base, **api, **env}, cwd=tmp_path, timeout=600, check=False)

    return invoke


def test_index_search_count_delete_drop(run, tmp_path: Path, photos: list[Photo]) -> None:  # type: ignore[no-untyped-def]
    paths = write_folder(tmp_path / "photos", photos, 40)
    indexed = run("index", str(tmp_path / "photos"), "--json", "--chunk-size", "16")
    assert indexed.returncode == 0, indexed.stderr
    summary = json.loads(indexed.stdout)
    assert (summary["indexed"], summary["failed"]) == (40, 0) and summary["images_per_second"] > 0

    target = paths[13]
    query = recompressed_copy(target, tmp_path / "query.jpg", scale=0.7, quality=50)
    found = run("search", str(query), "--top-k", "7", "--json")
    assert found.returncode == 0, found.stderr
    results = json.loads(found.stdout)
    assert len(results) == 7 and results[0]["path"] == str(target)
    assert results[0]["labels"] == [target.parent.name]

    # Several images at once: each answered under its own path, in the order given; a threshold
    # keeps fewer results rather than padding.
    other = recompressed_copy(paths[2], tmp_path / "other.jpg", scale=0.8, quality=60)
    both = json.loads(run("search", str(other), str(query), "--top-k", "3", "--json").stdout)
    assert [entry["image"] for entry in both] == [str(other), str(query)]
    assert [entry["results"][0]["path"] for entry in both] == [str(paths[2]), str(target)]
    cut = (results[0]["score"] + results[1]["score"]) / 2
    strict = json.loads(run("search", str(query), "--top-k", "7", "--min-score", f"{cut:.6f}", "--json").stdout)
    assert [r["path"] for r in strict] == [str(target)]
    listed = run("search", str(other), str(query), "--top-k", "2")
    assert listed.stdout.splitlines()[0] == f"{other}:" and f"{query}:" in listed.stdout.splitlines()
    refused = run("search", str(query), "--min-score", "1.5")
    assert refused.returncode == 2 and "--min-score" in refused.stderr
    # Query expansion, by the flag and by QUERY_EXPANSION in `.env`; the flag wins.
    expanded = json.loads(run("search", str(query), "--top-k", "7", "--expand", "2", "--json").stdout)
    assert expanded[0]["path"] == str(target) and len(expanded) == 7
    assert [r["score"] for r in expanded] != [r["score"] for r in results]
    (tmp_path / ".env").write_text("QUERY_EXPANSION=2\n")
    assert json.loads(run("search", str(query), "--top-k", "7", "--json").stdout) == expanded
    assert json.loads(run("search", str(query), "--top-k", "7", "--expand", "0", "--json").stdout) == results
    (tmp_path / ".env").unlink()
    refused = run("search", str(query), "--expand", "51")
    assert refused.returncode == 2 and "--expand" in refused.stderr

    again = run("index", str(tmp_path / "photos"), "--json")
    assert json.loads(again.stdout)["skipped"] == 40
    counted = run("count", "--json")
    assert json.loads(counted.stdout) == {"collection": "milvus_img_search", "indexed": 40,
                                          "failed": 0, "pending": 0, "vectors": 40}

    deleted = run("delete", str(target))
    assert deleted.returncode == 0 and "deleted 1 image" in deleted.stdout
    plain = run("search", str(query), "--top-k", "3")
    assert str(target) not in plain.stdout and plain.stdout.count("\n") == 3
    assert json.loads(run("count", "--json").stdout)["indexed"] == 39

    refused = run("drop")
    assert refused.returncode == 2 and "--yes" in refused.stderr  # a usage mistake, as argparse exits
    assert refused.stderr.startswith("usage: imgsearch drop ")  # with the command's own usage line
    assert run("drop", "--yes").returncode == 0
    assert json.loads(run("count", "--json").stdout)["indexed"] == 0


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("imgsearch: error:")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def test_bad_input_is_one_clear_line(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert_one_line_error(run("index", str(tmp_path / "missing")), "no such file or folder")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    assert_one_line_error(run("index", str(tmp_path / "empty")), "no images")
    (tmp_path / "fake.jpg").write_text("not a picture")
    assert_one_line_error(run("search", str(tmp_path / "fake.jpg")), "not an image")
    assert_one_line_error(run("search", str(tmp_path / "nope.jpg")), "no such image")
    assert_one_line_error(run("count", TOP_K="0"), "TOP_K")
    assert_one_line_error(run("count", "--collection", "bad-name;"), "invalid collection name")
    assert_one_line_error(run("delete", str(tmp_path / "never-indexed.jpg")), "nothing indexed")
    refused = run("count", MILVUS_LITE_MEMTABLE_MEMORY_LIMIT_BYTES="16MB")
    assert_one_line_error(refused, "Milvus Lite at ", "MILVUS_LITE_MEMTABLE_MEMORY_LIMIT_BYTES", "'16MB'")
    assert "cannot reach" not in refused.stderr


def test_unreachable_backends_are_named(run, tmp_path: Path, photos: list[Photo]) -> None:  # type: ignore[no-untyped-def]
    write_folder(tmp_path / "p", photos, 1)
    assert_one_line_error(run("index", str(tmp_path / "p"), MILVUS_URI="http://127.0.0.1:9"), "Milvus")
    assert_one_line_error(
        run("count", DATABASE_URL="mysql+pymysql://root:@127.0.0.1:9/x?connect_timeout=2"),
        "database",
    )


def test_demo_indexes_a_folder_then_finds_a_copy_of_its_first_photo(  # type: ignore[no-untyped-def]
    run, tmp_path: Path, photos: list[Photo]
) -> None:
    """The README's first command, with a folder of the user's (the sample set is the same path)."""
    paths = sorted(write_folder(tmp_path / "mine", photos, 12))
    done = run("demo", str(tmp_path / "mine"), own_api=True)  # as a new user runs it: no Prefect server
    assert done.returncode == 0, done.stderr[-2000:]
    assert "indexed 12, unchanged 0, failed 0 of 12 images" in done.stdout
    first_hit = next(line for line in done.stdout.splitlines() if line.strip().startswith("1 "))
    assert str(paths[0]) in first_hit, done.stdout
    assert "Traceback" not in done.stderr


def test_duplicates_lists_the_planted_groups(run, tmp_path: Path, photos: list[Photo]) -> None:  # type: ignore[no-untyped-def]
    from tests.test_duplicates import plant

    expected, _ = plant(tmp_path / "library", photos)
    assert run("index", str(tmp_path / "library")).returncode == 0
    found = run("duplicates", "--json")
    assert found.returncode == 0, found.stderr
    body = json.loads(found.stdout)
    assert body["min_score"] == 0.93 and [g["size"] for g in body["groups"]] == [3, 3, 2]
    assert sorted(sorted(i["path"] for i in g["images"]) for g in body["groups"]) == sorted(sorted(e) for e in expected)
    listed = run("duplicates", "--min-score", "0.99999").stdout.splitlines()
    headings = [line for line in listed if line.startswith("group ")]
    assert len(headings) == 2 and all(": 2 images, similarity >= " in line for line in headings)
    assert len(listed) == 2 + 2 * 2  # each group's heading and its images, one a line
    assert_one_line_error(run("duplicates", "--min-score", "0.2"), "min_score for duplicates must be from 0.5")
    assert_one_line_error(run("duplicates", "--collection", "nothing"), "no collection named 'nothing'")
    # Ctrl-C or SIGTERM while the vectors are read back: stopped at once, its temporary file gone.
    (tmp_path / "tmp").mkdir()
    for sent, status in (("SIGINT", 130), ("SIGTERM", 143)):
        stopped = run("duplicates", IMGSEARCH_FAILPOINT=f"duplicates-read@1:{sent}", TMPDIR=str(tmp_path / "tmp"))
        assert stopped.returncode == status, stopped.stderr
        assert stopped.stderr.strip().endswith("imgsearch: interrupted") and "Traceback" not in stopped.stderr
        assert list((tmp_path / "tmp").iterdir()) == []

    # More like an indexed original: its copies first; less like one of them: that one falls back.
    original = next(p for p in expected[0] if "/originals/" in p)
    copies = sorted(expected[0] - {original})
    like = json.loads(run("similar", original, "--top-k", "2", "--json").stdout)
    assert sorted(r["path"] for r in like) == copies
    unlike = json.loads(run("similar", original, "--unlike", copies[0], "--top-k", "1", "--json").stdout)
    assert [r["path"] for r in unlike] == [copies[1]]
    assert_one_line_error(run("similar", str(tmp_path / "elsewhere.jpg")), "not indexed")

    # --resolve lists what it would do and changes nothing; --apply keeps each group's first image.
    keeps = [g["images"][0]["path"] for g in body["groups"]]
    indexed = json.loads(run("count", "--json").stdout)["indexed"]
    others = sorted(i["path"] for g in body["groups"] for i in g["images"][1:])
    planned = run("duplicates", "--resolve", "--move-to", "aside")
    assert planned.returncode == 0, planned.stderr
    assert planned.stdout.splitlines()[-1].startswith("dry run: 5 images in 3 groups would be removed from ")
    assert "nothing changed. Run again with --apply" in planned.stdout and not (tmp_path / "aside").exists()
    assert all(f"would remove {path} (moved to {tmp_path / 'aside' / Path(path).name})" in planned.stdout
               for path in others)
    for misuse, message in ((("--apply",), "go with --resolve"), (("--resolve", "--move-to", "x", "--delete-files"),
                                                                  "not both")):
        refused = run("duplicates", *misuse)  # a usage error: the usage, then one line, rc 2
        assert refused.returncode == 2 and refused.stderr.splitlines()[-1].endswith(message), refused.stderr
    done = run("duplicates", "--resolve", "--apply", "--move-to", "aside", "--json")
    assert done.returncode == 0, done.stderr
    resolutions = json.loads(done.stdout)["resolutions"]
    assert [r["keep"]["path"] for r in resolutions] == keeps
    assert sorted(i["path"] for r in resolutions for i in r["removed"]) == others
    assert sorted(p.name for p in (tmp_path / "aside").iterdir()) == sorted(Path(p).name for p in others)
    assert all(Path(path).exists() for path in keeps) and not any(Path(path).exists() for path in others)
    assert json.loads(run("count", "--json").stdout)["indexed"] == indexed - 5
    assert run("duplicates").stdout.startswith("no duplicates in ")


def test_export_writes_both_files_and_refuses_an_existing_folder(run, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                                 photos: list[Photo]) -> None:
    import numpy as np

    write_folder(tmp_path / "p", photos, 5)
    assert run("index", str(tmp_path / "p")).returncode == 0
    done = run("export", "--out", str(tmp_path / "out"), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["images"] == 5
    assert np.load(tmp_path / "out" / "vectors.npy").shape == (5, 2048)
    assert len((tmp_path / "out" / "records.csv").read_text().splitlines()) == 6
    assert_one_line_error(run("export", "--out", str(tmp_path / "out")), "exists")
    # Ctrl-C or SIGTERM once a batch is written leaves nothing; a kill leaves a `.part` folder,
    # which the next export into that folder replaces.
    for signal_name in ("SIGINT", "SIGTERM"):
        stopped = run("export", "--out", str(tmp_path / "cut"), IMGSEARCH_FAILPOINT=f"export-batch@1:{signal_name}")
        code = 128 + signal.Signals[signal_name]  # 130 for Ctrl-C, 143 for SIGTERM
        assert stopped.returncode == code and "interrupted" in stopped.stderr, stopped.stderr
        assert not (tmp_path / "cut").exists() and not (tmp_path / "cut.part").exists()
    killed = run("export", "--out", str(tmp_path / "cut"), IMGSEARCH_FAILPOINT="export-batch@1")
    assert killed.returncode == -9 and (tmp_path / "cut.part").exists() and not (tmp_path / "cut").exists()
    assert run("export", "--out", str(tmp_path / "cut")).returncode == 0
    assert not (tmp_path / "cut.part").exists() and np.load(tmp_path / "cut" / "vectors.npy").shape == (5, 2048)


def test_sample_kinds_writes_a_labelled_voc_tree(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    written = run("sample", str(tmp_path / "kinds"), "--count", "8", "--kinds", "--seed", "2")
    assert written.returncode == 0, written.stderr
    assert written.stdout.startswith("wrote 8 images of 8 kinds of object in PASCAL VOC layout under ")
    annotations = sorted((tmp_path / "kinds" / "VOCdevkit" / "VOC2012" / "Annotations").glob("*.xml"))
    assert len(annotations) == 8 and "<name>arrow</name>" in annotations[0].read_text()


def test_sample_fashion_writes_a_folder_per_kind(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    written = run("sample", "clothes", "--count", "20", "--fashion")  # relative to the working folder
    assert written.returncode == 0, written.stderr
    assert written.stdout == ("wrote 20 Fashion-MNIST photos of 10 kinds of clothing, a folder per kind, "
                              "under clothes\n")
    assert {folder.name: len(list(folder.iterdir())) for folder in (tmp_path / "clothes").iterdir()} == {
        name: 2 for name in ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker",
                             "bag", "ankle-boot")}
    both = run("sample", "x", "--fashion", "--kinds")
    assert both.returncode == 2 and "not allowed with argument" in both.stderr
    too_many = run("sample", "x", "--fashion", "--count", "70001")
    assert too_many.returncode == 1
    assert too_many.stderr.strip().splitlines() == ["imgsearch: error: Fashion-MNIST has 70000 images, not 70001"]


def test_index_into_another_encoders_collection_is_one_line(run, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                            photos: list[Photo]) -> None:
    """A collection made with POOLING=avg (the default before gem), indexed again with the
    default: refused before Prefect starts, one line that names the setting to use."""
    from imgsearch.vectors import VectorStore

    write_folder(tmp_path / "photos", photos, 2)
    store = VectorStore(str(tmp_path / "data" / "milvus.db"))
    store.ensure_collection("milvus_img_search", "resnet50/avg/fp32")  # fp32: nothing to convert below
    store.close()
    refused = run("index", str(tmp_path / "photos"))
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        "imgsearch: error: collection 'milvus_img_search' holds vectors of resnet50/avg/fp32, this process "
        "encodes with resnet50/gem/dynamic: set PRECISION=fp32 POOLING=avg to use it, or index into another "
        "collection (--collection), or drop it (imgsearch drop) and index again to re-embed"]
    kept = run("index", str(tmp_path / "photos"), "--json", POOLING="avg", PRECISION="fp32")
    assert kept.returncode == 0 and json.loads(kept.stdout)["indexed"] == 2, kept.stderr


def test_scales_are_recorded_with_the_collection_and_hold_through_adds_and_deletes(  # type: ignore[no-untyped-def]
        run, tmp_path: Path, photos: list[Photo]) -> None:
    """Issue 27: SCALES in `.env`, as the README writes it. The collection records the sizes its
    vectors were made at; images added later are described the same way (an indexed image is
    still its own nearest, at a cosine of 1); a process with other SCALES is refused by name."""
    from imgsearch.vectors import VectorStore

    paths = write_folder(tmp_path / "photos", photos, 10)
    (tmp_path / ".env").write_text("SCALES=0.707,1\n")
    first = run("index", str(tmp_path / "photos"), "--json")
    assert first.returncode == 0 and json.loads(first.stdout)["indexed"] == 10, first.stderr
    paths = write_folder(tmp_path / "photos", photos, 14)  # the same ten again, and four new
    added = json.loads(run("index", str(tmp_path / "photos"), "--json").stdout)
    assert (added["indexed"], added["skipped"]) == (4, 10)
    assert run("delete", str(paths[3])).returncode == 0
    query = recompressed_copy(paths[12], tmp_path / "query.jpg", scale=0.7, quality=50)
    found = json.loads(run("search", str(query), str(paths[5]), "--top-k", "3", "--json").stdout)
    assert [entry["results"][0]["path"] for entry in found] == [str(paths[12]), str(paths[5])]
    assert found[1]["results"][0]["score"] > 0.9999 and str(paths[3]) not in json.dumps(found)

    store = VectorStore(str(tmp_path / "data" / "milvus.db"))
    assert store.recorded_encoder("milvus_img_search") == "resnet50/gem/dynamic/sizes=158+224"
    assert store.count("milvus_img_search") == 13
    store.close()
    (tmp_path / ".env").unlink()
    for refused in (run("index", str(tmp_path / "photos")), run("search", str(query))):
        assert_one_line_error(refused, "holds vectors of resnet50/gem/dynamic/sizes=158+224",
                              "set PRECISION=dynamic POOLING=gem SCALES=0.7054,1 to use it")


def test_index_and_serve_warn_once_where_milvus_lite_ends(run, tmp_path: Path, photos: list[Photo]) -> None:  # type: ignore[no-untyped-def]
    """Issue 24: past LITE_SEARCH_LIMIT images a Lite collection is past a 60 ms search; index and serve
    say so in one line, naming the command that moves it. The catalog is filled directly (indexing
    15,000 photos takes minutes): the sizes are the catalog's."""
    from imgsearch.catalog import INDEXED, Catalog
    from imgsearch.collection import LITE_SEARCH_LIMIT
    from imgsearch.processes import free_port, wait_until_healthy

    write_folder(tmp_path / "photos", photos, 3)
    first = run("index", str(tmp_path / "photos"), "--collection", "lib")
    assert first.returncode == 0 and "warning" not in first.stderr, first.stderr
    catalog = Catalog(f"sqlite:///{tmp_path / 'data' / 'catalog.db'}")
    for start in range(0, LITE_SEARCH_LIMIT, 5000):
        catalog.upsert("lib", [{"id": 10**9 + n, "path": f"/big/{n}.jpg", "status": INDEXED, "labels": [],
                                "folder": "/big"} for n in range(start, start + 5000)])
    catalog.close()
    again = run("index", str(tmp_path / "photos"), "--collection", "lib")
    warnings = [line for line in again.stderr.splitlines() if "warning" in line]
    assert again.returncode == 0 and len(warnings) == 1, again.stderr
    assert f"holds {LITE_SEARCH_LIMIT + 3:,} images" in warnings[0]
    assert "imgsearch migrate --collection lib --to http://" in warnings[0]

    port = free_port()
    server = subprocess.Popen([IMGSEARCH, "serve", "--port", str(port)], stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "DATA_DIR": str(tmp_path / "data"), "PREFECT_HOME": str(tmp_path),
                                   "MILVUS_URI": "", "DATABASE_URL": ""}, cwd=tmp_path)
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}/health", server, 120)
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=60)
    said = [line for line in stderr.splitlines() if "warning: collection" in line]
    assert len(said) == 1 and "'lib'" in said[0] and "imgsearch migrate" in said[0], stderr[-800:]
    from imgsearch.collection import Stores, past_lite_limit
    from imgsearch.settings import load_settings

    stores = Stores.open(load_settings(data_dir=tmp_path / "data", milvus_uri="", database_url=""))
    assert past_lite_limit(stores, only="small") == [] and len(past_lite_limit(stores, only="lib")) == 1
