from __future__ import annotations

import random

import numpy as np
import pytest
from PIL import Image

from imgsearch.evaluation import edits, lead, learn_whitening, original_ranks, per_query_metrics, ranking_metrics


def test_ranking_metrics_by_hand() -> None:
    # Four unit vectors on a line of angles: 0 and 1 are "cat", 2 and 3 are "dog",
    # but 1 sits closer to 2 than to 0.
    angles = np.radians([0, 50, 60, 110])
    features = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    labels = [frozenset({"cat"}), frozenset({"cat"}), frozenset({"dog"}), frozenset({"dog"})]
    metrics = ranking_metrics(features, labels)
    # Rankings (self excluded): 0 -> [1, 2, 3]; 1 -> [2, 0, 3]; 2 -> [1, 3, 0]; 3 -> [2, 1, 0]
    assert metrics["P@1"] == pytest.approx(2 / 4)  # queries 1 and 2 miss at rank 1
    assert metrics["mAP"] == pytest.approx((1 + 1 / 2 + 1 / 2 + 1) / 4)
    assert metrics["P@10"] == pytest.approx(1 / 3)  # one relevant among three candidates, each query
    assert metrics["queries"] == 4


def test_per_query_metrics_are_what_the_means_average() -> None:
    angles = np.radians([0, 50, 60, 110])
    features = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    labels = [frozenset({"cat"}), frozenset({"cat"}), frozenset({"dog"}), frozenset({"dog"})]
    per_query = per_query_metrics(features, labels)
    assert per_query["P@1"].tolist() == [1, 0, 0, 1]
    assert per_query["mAP"].tolist() == pytest.approx([1, 1 / 2, 1 / 2, 1])


def test_a_lead_is_told_from_noise_by_pairing_the_queries() -> None:
    rng = np.random.default_rng(0)
    hardness = rng.uniform(0, 1, 400)  # how hard each query is: shared by both sides
    better, other = hardness + 0.01 + rng.normal(0, 0.002, 400), hardness
    mean, error = lead(better, other)
    assert mean == pytest.approx(0.01, abs=0.001) and error < 0.0002
    same_mean, same_error = lead(hardness + rng.normal(0, 0.002, 400), hardness)
    assert abs(same_mean) < 3 * same_error
    assert np.isnan(lead(np.array([1.0]), np.array([0.5]))[1])  # one query: no error to give


def test_queries_without_any_relevant_image_are_left_out() -> None:
    features = np.eye(3)
    labels = [frozenset({"a"}), frozenset({"a"}), frozenset({"lonely"})]
    assert ranking_metrics(features, labels)["queries"] == 2


def test_edits_keep_images_usable() -> None:
    image = Image.new("RGB", (500, 375), (120, 60, 30))
    for name, edit in edits(random.Random(0)).items():
        edited = edit(image)
        assert edited.mode == "RGB" and min(edited.size) > 50, name


def nuisance_dominated(seed: int = 0) -> tuple[np.ndarray, list[frozenset[str]]]:
    """Unit vectors whose label lies along an axis of small spread while three axes of large
    spread carry nothing (lighting, framing): cosine neighbours follow the nuisance."""
    rng = np.random.default_rng(seed)
    kinds = rng.integers(0, 2, 200)
    features = np.zeros((200, 6))
    features[:, 0] = 10.0  # pooled ReLU maps share a large positive mean
    features[:, 1] = np.where(kinds == 1, 0.3, -0.3) + rng.normal(0, 0.03, 200)
    features[:, 2:5] = rng.normal(0, 2.0, (200, 3))
    labels = [frozenset({f"kind {kind}"}) for kind in kinds]
    return features / np.linalg.norm(features, axis=1, keepdims=True), labels


def test_whitening_decorrelates_and_drops_axes_without_variance() -> None:
    features, _ = nuisance_dominated()
    whitening = learn_whitening(features)
    assert whitening.projection.shape == (6, 5)  # the sixth axis is all zeros: nothing to whiten
    projected = (features - whitening.mean) @ whitening.projection
    assert np.allclose(np.cov(projected.T), np.eye(5), atol=1e-3)
    assert np.allclose(np.linalg.norm(whitening(features), axis=1), 1.0)
    assert learn_whitening(features, dims=2).projection.shape == (6, 2)


def test_whitening_lets_a_weak_label_axis_count() -> None:
    features, labels = nuisance_dominated()
    plain = ranking_metrics(features, labels)["P@1"]
    whitened = ranking_metrics(learn_whitening(features)(features), labels)["P@1"]
    assert plain < 0.8 and whitened > 0.95, (plain, whitened)


def test_original_ranks_count_the_images_above_each_original() -> None:
    scores = np.array([[0.9, 0.5, 0.95], [0.2, 0.8, 0.1]])  # copy 0 of image 0, copy 1 of image 1
    assert original_ranks(scores, [0, 1]).tolist() == [1, 0]
    assert original_ranks(scores, [1, 2]).tolist() == [2, 2]


def test_expansions_name_the_best_dba_in_the_combination_and_plain_leads_nothing() -> None:
    """`measure_expansions` on clusters: every variant measured once, plain as it is, and the
    combination row built from the DBA and αQE with the highest mAP@10."""
    from imgsearch.evaluation import EXPANSION_ALPHAS, EXPANSION_KS, measure_expansions

    rng = np.random.default_rng(5)
    centres = rng.normal(size=(4, 64))
    database = np.repeat(centres, 12, axis=0) + 0.9 * rng.normal(size=(48, 64))
    database = (database / np.linalg.norm(database, axis=1, keepdims=True)).astype(np.float32)
    labels = [frozenset({f"k{row // 12}"}) for row in range(48)]
    chosen = list(range(0, 48, 4))
    copies = database[chosen] + 0.2 * rng.normal(size=(len(chosen), 64)).astype(np.float32)
    edited = {"noisy": (copies / np.linalg.norm(copies, axis=1, keepdims=True)).astype(np.float32)}
    figures = measure_expansions(database, edited, labels, chosen)
    assert len(figures) == 2 + 2 * len(EXPANSION_KS) * len(EXPANSION_ALPHAS)
    plain = figures["plain"]
    assert plain["mAP@10"] == pytest.approx(per_query_metrics(database, labels)["mAP@10"].mean())
    assert plain["near_duplicate_recall@1"] == pytest.approx(
        (original_ranks(edited["noisy"] @ database.T, chosen) == 0).mean())
    assert (plain["mAP@10_lead"], plain["mAP@10_lead_error"]) == (0.0, 0.0)
    dba = {name: f["mAP@10"] for name, f in figures.items() if name.startswith("DBA") and "+" not in name}
    qe = {name: f["mAP@10"] for name, f in figures.items() if name.startswith("αQE")}
    assert list(figures)[-1] == f"{max(dba, key=dba.get)} + {max(qe, key=qe.get)}"  # type: ignore[arg-type]


def test_multi_scale_is_measured_alone_and_with_the_best_qe_and_dba() -> None:
    from imgsearch.evaluation import measure_expansions
    from imgsearch.expansion import augment_database

    rng = np.random.default_rng(6)
    centres = rng.normal(size=(4, 64))

    def unit(rows: np.ndarray) -> np.ndarray:
        return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)

    database = unit(np.repeat(centres, 12, axis=0) + 0.9 * rng.normal(size=(48, 64)))
    scaled = unit(database + 0.3 * rng.normal(size=(48, 64)))
    labels = [frozenset({f"k{row // 12}"}) for row in range(48)]
    chosen = list(range(0, 48, 4))
    edited = {"noisy": unit(database[chosen] + 0.2 * rng.normal(size=(len(chosen), 64)))}
    scaled_edited = {"noisy": unit(scaled[chosen] + 0.2 * rng.normal(size=(len(chosen), 64)))}
    figures = measure_expansions(database, edited, labels, chosen, (scaled, scaled_edited), "ms")
    dba = {name: f["mAP@10"] for name, f in figures.items() if name.startswith("DBA") and "+" not in name}
    best = max(dba, key=dba.get)  # type: ignore[arg-type]
    k, alpha = (float(part.split("=")[1]) for part in best.removeprefix("DBA ").split())
    assert figures["ms"]["mAP@10"] == pytest.approx(per_query_metrics(scaled, labels)["mAP@10"].mean())
    augmented = augment_database(scaled, int(k), alpha)
    # Stored augmented, asked as embedded (DBA changes what is stored, not what is asked).
    expected = per_query_metrics(augmented, labels, scaled)["mAP@10"].mean()
    assert figures[f"ms + {best}"]["mAP@10"] == pytest.approx(expected)
    assert [name for name in figures if name.startswith("ms")][-1].startswith(f"ms + {best} + αQE k=")
