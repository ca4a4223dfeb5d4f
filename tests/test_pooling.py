import numpy as np
import pytest

from imgsearch.pooling import POOLINGS, gem, network_pooling, pool, unit_vectors


def maps(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((3, 7, 7, 16)).astype(np.float32) * 4


def test_gem_is_the_cube_root_of_the_mean_cube() -> None:
    m = maps()
    expected = np.power(np.mean(np.power(m.astype(np.float64), 3), axis=(1, 2)), 1 / 3)
    assert np.allclose(gem(m), expected, rtol=1e-5)


def test_gem_lies_between_avg_and_max() -> None:
    m = maps(1)
    mean, high, generalised = m.mean(axis=(1, 2)), m.max(axis=(1, 2)), gem(m)
    assert np.all(mean <= generalised + 1e-6) and np.all(generalised <= high + 1e-6)
    assert not np.allclose(generalised, mean) and not np.allclose(generalised, high)


def test_every_pooling_gives_unit_rows() -> None:
    for kind in POOLINGS:
        assert np.allclose(np.linalg.norm(pool(maps(), kind), axis=1), 1.0)


def test_gem_zero_maps_stay_finite() -> None:
    assert np.all(np.isfinite(pool(np.zeros((2, 7, 7, 4), np.float32), "gem")))


def test_unit_vectors_pools_maps_and_normalises_features() -> None:
    m = maps(2)
    assert np.allclose(unit_vectors(m), pool(m, "gem"))
    features = np.array([[3.0, 4.0], [0.0, 0.0]])
    result = unit_vectors(features)
    assert result.dtype == np.float32
    assert np.allclose(result, [[0.6, 0.8], [0.0, 0.0]])


def test_only_gem_is_pooled_outside_the_network() -> None:
    assert [network_pooling(kind) for kind in POOLINGS] == ["avg", "max", None]
    with pytest.raises(ValueError, match="not a pooling"):
        network_pooling("sum")
