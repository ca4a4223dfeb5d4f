"""The quantised encoders on LiteRT against Keras FP32, on real photos; the cached
conversion: reused when intact, rebuilt (to the same bytes) when not."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from imgsearch import litert
from imgsearch.decode import decode_image
from imgsearch.pooling import pool
from imgsearch.resources import encoder as get_encoder
from imgsearch.samples import Photo, augment
from imgsearch.settings import Settings

pytestmark = pytest.mark.usefixtures("weights")
# The pooling `imgsearch weights` (setup.sh) converted for: the default one.
POOLING = Settings.model_fields["pooling"].default


@pytest.fixture(scope="module")
def pixels(photos: list[Photo]) -> np.ndarray:
    """60 real photos: the 20 foolbox photos and two seeded crops of each, as the index decodes them."""
    import io
    import random

    from PIL import Image

    rng = random.Random(7)
    images = []
    for photo in photos:
        data = photo.path.read_bytes()
        images.append(decode_image(data).pixels)
        source = Image.open(photo.path).convert("RGB")
        for _ in range(2):
            buffer = io.BytesIO()
            augment(source, rng).save(buffer, "JPEG", quality=85)
            images.append(decode_image(buffer.getvalue()).pixels)
    return np.stack(images)


@pytest.mark.parametrize("precision", ["int8", "dynamic"])
def test_quantised_vectors_agree_with_fp32(weights: Path, pixels: np.ndarray, precision: str) -> None:
    reference = get_encoder(weights, POOLING, 32, "fp32").embed(pixels)
    quantised = get_encoder(weights, POOLING, 32, precision)
    vectors = quantised.embed(pixels)
    assert vectors.shape == reference.shape and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cosine = (vectors * reference).sum(axis=1)
    assert cosine.mean() > 0.99 and cosine.min() > 0.98, (cosine.mean(), cosine.min())
    # Each photo's nearest other photo is the same under both encoders for nearly all of them.
    def nearest(v: np.ndarray) -> np.ndarray:
        similarity = v @ v.T
        np.fill_diagonal(similarity, -2)
        return similarity.argmax(axis=1)
    assert (nearest(vectors) == nearest(reference)).mean() >= 0.95
    # A batch, a remainder and single images give the same vectors.
    parts = np.concatenate([quantised.embed(pixels[:11]), quantised.embed(pixels[11:12])])
    assert np.allclose(parts, vectors[:12], atol=1e-5)
    assert quantised.name == f"resnet50/{POOLING}/{precision}"


def test_keras_gem_pools_the_map_that_avg_pools_in_the_network(weights: Path, pixels: np.ndarray) -> None:
    """GeM is pooled outside the network, from the map the network would average: both
    encoders share every layer up to the map."""
    from imgsearch import runtime
    from imgsearch.encoder import build_keras_resnet50

    tf, keras = runtime.tensorflow(), runtime.keras()
    few = pixels[:6]
    maps = build_keras_resnet50(weights, "gem")(keras.applications.resnet50.preprocess_input(
        tf.cast(few, tf.float32)), training=False).numpy()
    assert maps.shape == (6, 7, 7, 2048)
    assert np.allclose(get_encoder(weights, "gem", 32, "fp32").embed(few), pool(maps, "gem"), atol=1e-5)
    assert np.allclose(get_encoder(weights, "avg", 32, "fp32").embed(few), pool(maps, "avg"), atol=1e-5)


def test_the_cached_model_is_reused_and_a_broken_one_rebuilt_to_the_same_bytes(weights: Path,
                                                                                 tmp_path: Path) -> None:
    cached = litert.converted_model(weights, POOLING, "dynamic")
    record = json.loads(cached.with_suffix(".json").read_text())
    assert record["precision"] == "dynamic" and record["recipe"] == litert.RECIPE
    # The same weights in another folder, with the cache copied beside them.
    (tmp_path / "litert").mkdir()
    os.symlink(weights, tmp_path / weights.name)
    copy = tmp_path / "litert" / cached.name
    shutil.copy(cached, copy)
    shutil.copy(cached.with_suffix(".json"), copy.with_suffix(".json"))
    before = copy.stat().st_mtime_ns
    assert litert.converted_model(tmp_path / weights.name, POOLING, "dynamic") == copy
    assert copy.stat().st_mtime_ns == before, "an intact cached model is used as it is"

    broken = bytearray(copy.read_bytes())
    broken[len(broken) // 2] ^= 0xFF
    copy.write_bytes(bytes(broken))
    assert litert.converted_model(tmp_path / weights.name, POOLING, "dynamic") == copy
    assert copy.read_bytes() == cached.read_bytes(), "rebuilt, and the conversion is deterministic"


def test_a_record_of_another_converter_or_recipe_is_stale(weights: Path) -> None:
    cached = litert.converted_model(weights, POOLING, "int8")
    record = json.loads(cached.with_suffix(".json").read_text())
    expected = {key: record[key] for key in ("weights_sha256", "precision", "pooling", "converter", "recipe")}
    assert litert._valid(cached, cached.with_suffix(".json"), expected)
    for key, other in (("converter", "0.0.0"), ("recipe", 0), ("weights_sha256", "0" * 64)):
        assert not litert._valid(cached, cached.with_suffix(".json"), {**expected, key: other})
    assert not litert._valid(cached, cached.with_suffix(".missing"), expected)


def test_calibration_inputs_are_the_same_bytes_every_time(weights: Path) -> None:
    first = litert.calibration_inputs(weights.parent)
    assert first.shape == (litert.CALIBRATION_IMAGES, 224, 224, 3) and first.dtype == np.uint8
    assert np.array_equal(first, litert.calibration_inputs(weights.parent))
    assert len({image.tobytes() for image in first}) == litert.CALIBRATION_IMAGES


def test_a_search_takes_the_model_in_one_turn_between_index_batches(weights: Path, pixels: np.ndarray,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A search of 3 images is 3 single-image passes; none of the index batches waiting may
    come between them (one did after each, and searches under load waited seconds)."""
    import threading
    import time

    encoder = get_encoder(weights, POOLING, 8, "dynamic")
    passes: list[str] = []
    real_outputs = litert.interpreter_outputs

    def logged(interpreter: object, batch: np.ndarray) -> np.ndarray:
        passes.append(threading.current_thread().name)
        return real_outputs(interpreter, batch)

    monkeypatch.setattr(litert, "interpreter_outputs", logged)
    stop = threading.Event()

    def index_batches() -> None:
        while not stop.is_set():
            encoder.embed(pixels[:8])

    indexing = threading.Thread(target=index_batches, name="index")
    indexing.start()
    try:
        deadline = time.monotonic() + 60
        while "index" not in passes:  # an index batch has the model, more are queued
            assert time.monotonic() < deadline and indexing.is_alive()
            time.sleep(0.005)
        encoder.embed(pixels[8:11], urgent=True)
    finally:
        stop.set()
        indexing.join(60)
    first = passes.index(threading.current_thread().name)
    assert passes[first : first + 3] == [threading.current_thread().name] * 3, passes
