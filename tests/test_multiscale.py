"""`multiscale.describe` (eval): each image at every scale's size, pooled, summed, normalised;
`MultiScaleEncoder` (SCALES): the same from pixels decoded once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgsearch import litert
from imgsearch.decode import decode_image
from imgsearch.multiscale import DEFAULT_SCALES, MultiScaleEncoder, describe, size_of
from imgsearch.pooling import pool
from imgsearch.resources import encoder as get_encoder
from imgsearch.samples import Photo
from imgsearch.settings import Settings

POOLING = Settings.model_fields["pooling"].default


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


@pytest.mark.usefixtures("weights")
def test_the_multi_scale_encoder_gives_what_eval_measured_on_keras_and_litert(weights: Path,
                                                                             photos: list[Photo]) -> None:
    """SCALES' encoder: pixels decoded once at the largest size, the smaller sizes resized from
    them; eval decoded each size from the file. Real photos, real Keras and LiteRT."""
    files = [photo.path.read_bytes() for photo in photos[:8]]
    keras = get_encoder(weights, POOLING, 32, "fp32", (158, 224, 317))
    assert isinstance(keras, MultiScaleEncoder)
    assert (keras.name, keras.input_size) == (f"resnet50/{POOLING}/fp32/sizes=158+224+317", 317)
    assert len({id(part._lock) for part in keras.parts}) == 1, "one pass at a time over every size"
    vectors = keras.embed(np.stack([decode_image(data, 317).pixels for data in files]))
    assert vectors.shape == (len(files), 2048) and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    parts = {part.input_size: part for part in keras.parts}
    summed = sum(parts[size].embed(np.stack([decode_image(data, size).pixels for data in files]))
                 for size in (158, 224, 317))
    cosine = (vectors * (summed / np.linalg.norm(summed, axis=1, keepdims=True))).sum(axis=1)
    assert cosine.min() > 0.998, cosine.min()  # measured 0.9991: resized from 317 or decoded, alike
    single = parts[224].embed(np.stack([decode_image(data).pixels for data in files]))
    assert (vectors * single).sum(axis=1).mean() < 0.99, "not the 224 vector under another name"
    with pytest.raises(ValueError, match="317"):
        keras.embed(np.stack([decode_image(files[0]).pixels]))

    # The default precision at the same sizes: its one LiteRT file, resized to each size.
    dynamic = get_encoder(weights, POOLING, 32, "dynamic", (158, 224, 317))
    assert dynamic.name == f"resnet50/{POOLING}/dynamic/sizes=158+224+317"
    agreement = (dynamic.embed(np.stack([decode_image(data, 317).pixels for data in files])) * vectors).sum(axis=1)
    assert agreement.mean() > 0.99 and agreement.min() > 0.98, (agreement.mean(), agreement.min())
    one_file = litert.converted_model(weights, POOLING, "dynamic")
    assert all(litert.converted_model(weights, POOLING, "dynamic", size) == one_file for size in (158, 317))
    assert "px" not in one_file.name and {part.model_path for part in dynamic.parts} == {one_file}
