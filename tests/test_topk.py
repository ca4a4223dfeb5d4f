"""`top_columns` by hand: largest first, ties in column order, k clipped to the columns."""

from __future__ import annotations

import numpy as np

from imgsearch.topk import top_columns


def test_the_k_largest_columns_of_each_row_largest_first() -> None:
    scores = np.array([[0.1, 0.9, 0.5, 0.7], [0.3, 0.3, 0.8, 0.3]], dtype=np.float32)
    assert top_columns(scores, 2).tolist() == [[1, 3], [2, 0]]
    assert top_columns(scores, 3).tolist() == [[1, 3, 2], [2, 0, 1]], "ties in column order"
    assert top_columns(scores, 10).shape == (2, 4)
    rng = np.random.default_rng(0)
    many = rng.normal(size=(50, 300))
    assert np.array_equal(top_columns(many, 7), np.argsort(-many, axis=1, kind="stable")[:, :7])
