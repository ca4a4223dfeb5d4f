"""Global pooling of ResNet50's last feature map (7x7x2048) into one unit vector.

`avg` and `max` are pooled by the network itself (Keras' `pooling=`), in every
precision. GeM (generalised mean, p=3; Radenović, Tolias and Chum 2018) is
pooled here, in float32 numpy, after the network: its cube does not survive
int8 activations (a GeM head converted to full int8 measured a mean cosine of
0.774 to Keras FP32) nor is it worth a bfloat16 rounding, so the network hands
over the map and every precision pools it the same way.
"""

from __future__ import annotations

import numpy as np

POOLINGS = ("avg", "max", "gem")


def network_pooling(pooling: str) -> str | None:
    """What the network pools itself (Keras' `pooling=` argument): None for GeM,
    whose map comes out of the network and is pooled by `unit_vectors`."""
    if pooling not in POOLINGS:
        raise ValueError(f"not a pooling: {pooling!r} (one of {', '.join(POOLINGS)})")
    return None if pooling == "gem" else pooling


def gem(maps: np.ndarray) -> np.ndarray:
    """(N, H, W, C) post-ReLU maps -> (N, C): the cube root of the mean cube over H and W."""
    clamped = np.maximum(maps, 1e-6, dtype=np.float32)
    cubes = clamped * clamped * clamped  # three products: several times faster than np.power
    pooled: np.ndarray = np.cbrt(cubes.mean(axis=(1, 2)))
    return pooled


def average(maps: np.ndarray) -> np.ndarray:
    pooled: np.ndarray = maps.mean(axis=(1, 2))
    return pooled


def maximum(maps: np.ndarray) -> np.ndarray:
    pooled: np.ndarray = maps.max(axis=(1, 2))
    return pooled


def pool(maps: np.ndarray, kind: str) -> np.ndarray:
    """(N, H, W, C) maps -> (N, C) unit vectors, pooled as `kind`."""
    pooled = {"avg": average, "max": maximum, "gem": gem}[kind](maps)
    return unit_vectors(pooled)


def unit_vectors(outputs: np.ndarray) -> np.ndarray:
    """What an encoder returns from its network's output: (N, C) features, or
    (N, H, W, C) maps to GeM-pool first, as float32 rows of length one."""
    features = gem(outputs) if outputs.ndim == 4 else outputs
    features = np.asarray(features, dtype=np.float32)
    unit: np.ndarray = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    return unit
