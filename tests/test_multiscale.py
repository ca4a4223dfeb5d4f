"""`multiscale.describe`: each image at every scale's size, pooled, summed, normalised."""

from __future__ import annotations

import numpy as np
from PIL import Image

from imgsearch.multiscale import DEFAULT_SCALES, describe, size_of
from imgsearch.pooling import pool


def pixels_at(image: Image.Image, size: int) -> np.ndarray:
    return np.asarray(image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)


def coarse_maps(pixels: np.ndarray) -> np.ndarray:
    """A stand-in feature extractor with ResNet50's stride: 32x32 blocks' mean colour, tiled to
    2048 channels with a channel-dependent weight (scale-dependent, as a network's maps are)."""
    n, size, _, _ = pixels.shape
    cells = size // 32
    blocks = pixels[:, : cells * 32, : cells * 32].reshape(n, cells, 32, cells, 32, 3).mean(axis=(2, 4))
    weights = np.random.default_rng(0).normal(size=(3, 2048)).astype(np.float32)
    return np.maximum(blocks.astype(np.float32) @ weights, 0) + 1e-3


def test_the_vectors_of_every_scale_are_summed_and_normalised() -> None:
    rng = np.random.default_rng(1)
    images = [Image.fromarray(rng.integers(0, 255, (90, 120, 3), dtype=np.uint8)) for _ in range(5)]
    sizes_asked: list[int] = []

    def pixels(image: Image.Image, size: int) -> np.ndarray:
        sizes_asked.append(size)
        return pixels_at(image, size)

    vectors, seconds = describe(images, coarse_maps, pixels, "gem", DEFAULT_SCALES)
    assert [size_of(scale) for scale in DEFAULT_SCALES] == [158, 224, 317] == list(seconds)
    assert sorted(set(sizes_asked)) == [158, 224, 317] and len(sizes_asked) == 15
    expected = sum(pool(coarse_maps(np.stack([pixels_at(image, size) for image in images])), "gem")
                   for size in (158, 224, 317))
    expected = expected / np.linalg.norm(expected, axis=1, keepdims=True)
    assert np.allclose(vectors, expected, atol=1e-5)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    single, _ = describe(images, coarse_maps, pixels, "gem", (1.0,))
    assert np.allclose(single, pool(coarse_maps(np.stack([pixels_at(image, 224) for image in images])), "gem"),
                       atol=1e-6), "one scale: the system's own 224 vector"
