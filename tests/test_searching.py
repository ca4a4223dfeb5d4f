"""Search with query expansion (`searching.nearest_each` with a `QueryExpansion`) on real Milvus
Lite and a real catalog: it must answer what plain search answers in kind (top_k, min_score,
labels, exclusions, "more like these"), and an indexed image must still find itself first."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from imgsearch.catalog import INDEXED, Catalog
from imgsearch.expansion import QueryExpansion
from imgsearch.searching import like_these, nearest_each
from imgsearch.vectors import VectorStore

CLUSTERS, PER_CLUSTER = 6, 25
EXPANSION = QueryExpansion(k=3, alpha=1.0)


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> tuple[VectorStore, Catalog, np.ndarray]:
    """CLUSTERS groups of near vectors, id n is row n; the images of cluster c are labelled
    `c{c}` and, every third one, `odd` as well."""
    folder: Path = tmp_path_factory.mktemp("searching")
    rng = np.random.default_rng(3)
    centres = unit(rng.normal(size=(CLUSTERS, 2048)))
    rows = unit(np.repeat(centres, PER_CLUSTER, axis=0) + 0.04 * rng.normal(size=(CLUSTERS * PER_CLUSTER, 2048)))
    labels = [[f"c{n // PER_CLUSTER}", *(["odd"] if n % 3 == 0 else [])] for n in range(len(rows))]
    store, catalog = VectorStore(str(folder / "milvus.db")), Catalog(f"sqlite:///{folder / 'catalog.db'}")
    ids = list(range(1, len(rows) + 1))
    store.upsert("c", ids, rows, labels, ["/photos"] * len(ids))
    catalog.upsert("c", [{"id": image, "path": f"/photos/{image}.jpg", "labels": labels[image - 1], "folder": "/photos",
                          "status": INDEXED, "size": 1, "mtime": 1, "sha256": f"{image:064x}", "width": 1, "height": 1}
                         for image in ids])
    return store, catalog, rows


def test_an_indexed_image_still_finds_itself_first_and_its_cluster_next(
        indexed: tuple[VectorStore, Catalog, np.ndarray]) -> None:
    store, catalog, rows = indexed
    queries = rows[[0, PER_CLUSTER + 4, 5 * PER_CLUSTER + 24]]
    plain = nearest_each(queries, "c", 10, store, catalog)
    expanded = nearest_each(queries, "c", 10, store, catalog, expansion=EXPANSION)
    for row, answers in zip([0, PER_CLUSTER + 4, 5 * PER_CLUSTER + 24], expanded, strict=True):
        assert answers[0].id == row + 1, "itself first"
        assert len(answers) == 10 and {r.labels[0] for r in answers} == {f"c{row // PER_CLUSTER}"}
        assert [r.score for r in answers] == sorted((r.score for r in answers), reverse=True)
    assert [[r.id for r in a] for a in expanded] != [[r.id for r in a] for a in plain], "the expansion changed the order"
    assert nearest_each(queries, "c", 10, store, catalog, expansion=QueryExpansion(0)) == plain, "k 0 is off"


def test_top_k_min_score_labels_and_exclusions_hold_with_expansion(
        indexed: tuple[VectorStore, Catalog, np.ndarray]) -> None:
    store, catalog, rows = indexed
    query = rows[:1]
    for top_k in (1, 4, 40):
        assert len(nearest_each(query, "c", top_k, store, catalog, expansion=EXPANSION)[0]) == top_k
    labelled = nearest_each(query, "c", 20, store, catalog, label="odd", expansion=EXPANSION)[0]
    assert labelled and all("odd" in r.labels for r in labelled)
    excluded = set(range(1, 6))
    rest = nearest_each(query, "c", 10, store, catalog, exclude=excluded, expansion=EXPANSION)[0]
    assert len(rest) == 10 and not excluded & {r.id for r in rest}
    everything = nearest_each(query, "c", 40, store, catalog, expansion=EXPANSION)[0]
    threshold = everything[12].score
    above = nearest_each(query, "c", 40, store, catalog, min_score=threshold, expansion=EXPANSION)[0]
    assert above == [r for r in everything if r.score >= threshold], "fewer, never padded"
    assert nearest_each(query, "c", 10, store, catalog, min_score=1.0, expansion=EXPANSION)[0] == [], \
        "the expanded query is none of the images: nothing is 1.0 similar to it"


def test_more_like_these_with_expansion_leaves_the_examples_out(
        indexed: tuple[VectorStore, Catalog, np.ndarray]) -> None:
    store, catalog, _ = indexed
    positive, negative = [1, 2], [PER_CLUSTER + 1]
    answers = like_these(positive, negative, "c", 8, store, catalog, expansion=EXPANSION)
    assert len(answers) == 8 and not {r.id for r in answers} & {*positive, *negative}
    assert {r.labels[0] for r in answers} == {"c0"}


def test_an_image_whose_vector_went_missing_between_the_two_searches_adds_nothing(
        indexed: tuple[VectorStore, Catalog, np.ndarray], monkeypatch: pytest.MonkeyPatch) -> None:
    """The first search's answers are read back by id; one deleted meanwhile is not an error."""
    store, catalog, rows = indexed
    real = store.vectors
    monkeypatch.setattr(store, "vectors", lambda name, ids: {i: v for i, v in real(name, ids).items() if i != 2})
    answers = nearest_each(rows[:1], "c", 5, store, catalog, expansion=EXPANSION)[0]
    assert answers[0].id == 1 and len(answers) == 5
