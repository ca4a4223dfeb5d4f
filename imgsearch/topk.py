"""The k largest scores of each row, largest first: shared by query expansion's exact
neighbours (`expansion`) and duplicates' partition probes (`near_pairs`)."""

from __future__ import annotations

import numpy as np


def top_columns(scores: np.ndarray, k: int) -> np.ndarray:
    """For each row of `scores`, the columns of its k largest values, largest first (ties in
    column order); k is at most the number of columns. argpartition then a sort of only k
    values: O(columns + k log k) a row, not a sort of every column."""
    k = min(k, scores.shape[1])
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
    columns: np.ndarray = np.take_along_axis(top, order, axis=1)
    return columns
