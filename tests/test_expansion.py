"""αQE and DBA (`imgsearch.expansion`) by hand, on vectors whose neighbours are known."""

from __future__ import annotations

import numpy as np
import pytest

from imgsearch.expansion import augment_database, expand_by_answers, expand_queries, expanded, nearest


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def on_a_circle(degrees: list[float]) -> np.ndarray:
    angles = np.radians(degrees)
    return np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)


def test_nearest_ranks_by_cosine_and_can_leave_each_row_out_of_its_own_answers() -> None:
    base = on_a_circle([0, 10, 30, 100])
    indices, cosines = nearest(base, base, 2, leave_out_self=True)
    assert indices.tolist() == [[1, 2], [0, 2], [1, 0], [2, 1]]
    assert cosines[0].tolist() == pytest.approx([np.cos(np.radians(10)), np.cos(np.radians(30))])
    with_self, _ = nearest(base, base, 1)
    assert with_self.ravel().tolist() == [0, 1, 2, 3]
    assert nearest(base, base, 10, leave_out_self=True)[0].shape == (4, 3), "k is at most the other rows"


def test_a_vector_is_pulled_toward_its_neighbours_by_their_cosine_to_the_power_alpha() -> None:
    base = on_a_circle([0, 60, 180])
    neighbours = np.array([[1, 2]])
    cosines = np.array([[0.5, -1.0]])  # the opposite vector weighs nothing
    for alpha in (1.0, 3.0):
        got = expanded(base[:1], base, neighbours, cosines, alpha)
        weight = 0.5**alpha
        assert got[0] == pytest.approx(unit(base[:1] + weight * base[1:2])[0], abs=1e-6)
    assert expanded(base[:1], base, neighbours, cosines, 3.0)[0, 1] < expanded(base[:1], base, neighbours, cosines, 1.0)[0, 1]


def test_query_expansion_moves_a_query_to_the_middle_of_its_cluster() -> None:
    rng = np.random.default_rng(0)
    centre = unit(rng.normal(size=(1, 64)))
    cluster = unit(centre + 0.3 * rng.normal(size=(20, 64)))
    others = unit(rng.normal(size=(50, 64)))
    base = np.concatenate([cluster, others])
    query = unit(centre + 0.6 * rng.normal(size=(1, 64)))
    expanded_query = expand_queries(query, base, k=5, alpha=1.0)
    assert np.linalg.norm(expanded_query, axis=1) == pytest.approx(1.0)
    assert (expanded_query @ centre.T).item() > (query @ centre.T).item(), "closer to the cluster's centre"


def test_database_augmentation_leaves_a_lone_vector_and_merges_a_tight_pair() -> None:
    base = on_a_circle([0, 5, 90])
    augmented = augment_database(base, k=1, alpha=1.0)
    assert augmented[0] @ augmented[1] > base[0] @ base[1], "a close pair comes closer"
    assert np.linalg.norm(augmented, axis=1) == pytest.approx([1, 1, 1])
    assert augment_database(base, k=1, alpha=1.0).shape == base.shape


def test_answers_from_a_store_expand_each_query_by_the_vectors_it_has() -> None:
    """`expand_by_answers`: ragged answers (fewer than k, none), ids shared between queries, and
    an answer whose vector is not stored: the missing ones add nothing, whatever α is."""
    base = on_a_circle([0, 20, 90, 180])
    stored = {10: base[0], 20: base[1], 30: base[2]}
    queries = on_a_circle([5, 85, 45])
    answers = [[(10, 0.99), (20, 0.97), (99, 0.9)], [(30, 0.99)], []]
    for alpha in (0.0, 1.0, 3.0):
        got = expand_by_answers(queries, answers, stored, alpha)
        assert got[0] == pytest.approx(unit(queries[:1] + 0.99**alpha * base[:1] + 0.97**alpha * base[1:2])[0], abs=1e-6)
        assert got[1] == pytest.approx(unit(queries[1:2] + 0.99**alpha * base[2:3])[0], abs=1e-6)
        assert got[2] == pytest.approx(queries[2], abs=1e-6), "no answers: the query as it was"
    assert expand_by_answers(queries, [[], [], []], {}, 1.0) == pytest.approx(queries, abs=1e-6)
