"""ResNet50 on LiteRT (XNNPACK), quantised: the encoder's `dynamic` and `int8` precisions.

The Keras model of `imgsearch/encoder.py`, built from the same weights, is
exported as a SavedModel and converted once by TensorFlow's converter:

- `dynamic`: weights stored as int8, activations computed in float;
- `int8`: weights and activations int8 (float input and output kept), the
  activation ranges calibrated on `CALIBRATION_IMAGES` deterministic crops of
  the 20 real photos `imgsearch sample` uses, so every machine with the same
  weights and converter builds the same file.

The file is cached beside the weights, its name keyed by the weights' sha256,
the precision, the pooling, the input size (`int8` at a size other than 224, for
`SCALES`: its activation ranges are calibrated at that size; `dynamic` has one file
for every size, see `converted_model`), the converter (TensorFlow) version and this
recipe's version;
a JSON record beside it holds the file's own sha256. A file
whose record is missing, different or whose bytes do not match is rebuilt,
never used. Converting takes about a minute; `imgsearch weights` does it
ahead, and the first use does it otherwise (one process at a time: a lock file).
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import json
import logging
import os
import random
import subprocess
import sys
import tempfile
from contextlib import nullcontext
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from imgsearch import runtime
from imgsearch.decode import INPUT_SIZE
from imgsearch.encoder import FEATURE_DIM, PassLock, build_keras_resnet50, check_pixels
from imgsearch.encoder_names import encoder_name
from imgsearch.fetch import sha256_file
from imgsearch.pooling import unit_vectors
from imgsearch.weights import WeightsError

log = logging.getLogger(__name__)

PRECISIONS = ("dynamic", "int8")
RECIPE = 1  # bump when the conversion below changes: every cached file is then rebuilt
CALIBRATION_IMAGES = 120
CALIBRATION_SEED = 0
BATCH = 8  # images per pass: the fastest measured on 2 cores (int8: 163 images/s; one image 6 ms)
# Keras' resnet50.preprocess_input ("caffe"): RGB -> BGR, minus the ImageNet channel means.
BGR_MEANS = np.array([103.939, 116.779, 123.68], dtype=np.float32)


class ConversionError(WeightsError):
    """The LiteRT model could not be built from these weights."""


@dataclass(frozen=True)
class ModelRecord:
    weights_sha256: str
    precision: str
    pooling: str
    converter: str
    recipe: int
    calibration: str  # sha256 of the calibration inputs ("" without calibration)
    sha256: str  # of the .tflite file
    input_size: int = INPUT_SIZE


def preprocess(pixels: np.ndarray) -> np.ndarray:
    """(N, S, S, 3) RGB uint8 -> the float input Keras' preprocess_input gives."""
    return np.ascontiguousarray(pixels[..., ::-1], dtype=np.float32) - BGR_MEANS


def converted_model(weights: Path, pooling: str, precision: str, input_size: int = INPUT_SIZE) -> Path:
    """The cached LiteRT file for these weights, pooling, precision and input size; built
    if missing, stale or broken."""
    if precision not in PRECISIONS:
        raise ValueError(f"not a LiteRT precision: {precision}")
    if precision == "dynamic":
        # Its weights are quantised and its activations computed in float, so nothing in the file
        # depends on the input size: the 224 file resized to 158 or 317 pixels gave the same bits
        # as a file converted at that size (2 random images each, 2026-12-05), without the
        # minute of converting that each of SCALES' sizes cost.
        input_size = INPUT_SIZE
    weights_sha = sha256_file(weights)
    converter = importlib.metadata.version("tensorflow")  # without importing it: serving needs LiteRT only
    folder = weights.parent / "litert"
    sized = "" if input_size == INPUT_SIZE else f"-{input_size}px"  # 224's files keep their names
    name = f"resnet50-{pooling}-{precision}{sized}-{weights_sha[:16]}-tf{converter}-r{RECIPE}"
    model, record_path = folder / f"{name}.tflite", folder / f"{name}.json"
    expected: dict[str, object] = {"weights_sha256": weights_sha, "precision": precision, "pooling": pooling,
                                   "converter": converter, "recipe": RECIPE}
    if input_size != INPUT_SIZE:
        expected["input_size"] = input_size
    if _valid(model, record_path, expected):
        return model
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be converting the same model
        if _valid(model, record_path, expected):
            return model
        if model.exists():
            log.warning("cached LiteRT model %s is stale or broken; rebuilding it", model.name)
        log.warning("converting ResNet50 to LiteRT %s at %d pixels (once; about a minute)", precision, input_size)
        content, calibration = convert_in_child(weights, pooling, precision, input_size)
        record = ModelRecord(weights_sha, precision, pooling, converter, RECIPE, calibration,
                             hashlib.sha256(content).hexdigest(), input_size)
        _write_atomically(model, content)
        _write_atomically(record_path, json.dumps(asdict(record), indent=1).encode())
    return model


def _valid(model: Path, record_path: Path, expected: dict[str, object]) -> bool:
    try:
        record = json.loads(record_path.read_text())
        if any(record.get(key) != value for key, value in expected.items()):
            return False
        digest = hashlib.sha256(model.read_bytes()).hexdigest()
    except (OSError, ValueError):
        return False
    return bool(digest == record.get("sha256"))


def _write_atomically(path: Path, content: bytes) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "wb") as out:
        out.write(content)
    os.replace(temporary, path)


def convert_in_child(weights: Path, pooling: str, precision: str, input_size: int = INPUT_SIZE) -> tuple[bytes, str]:
    """`convert` in a fresh Python process: Keras names what it builds by what the
    process built before (a second model's input is `input_layer_1`), which changes
    the file, so only a fresh process gives the same bytes everywhere; and the
    converter's gigabyte goes back to the system when it ends."""
    with tempfile.TemporaryDirectory(prefix="imgsearch-litert-") as workdir:
        out = Path(workdir) / "model.tflite"
        command = [sys.executable, "-m", "imgsearch.litert", str(weights), pooling, precision, str(input_size),
                   str(out)]
        done = subprocess.run(command, env=runtime.child_environment(), capture_output=True, text=True,
                              check=False)
        if done.returncode != 0 or not out.is_file():
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise ConversionError(f"LiteRT conversion ({precision}) failed: {tail[:300]}")
        return out.read_bytes(), done.stdout.strip()


def convert(weights: Path, pooling: str, precision: str, input_size: int = INPUT_SIZE,
            scratch: Path | None = None) -> tuple[bytes, str]:
    """The LiteRT flatbuffer of ResNet50 (no top, `pooling` as the network does it:
    none for `gem`) at `precision`, taking `input_size` pixels, and the sha256 of the
    calibration inputs (empty for `dynamic`). The SavedModel goes under `scratch` (a
    temporary folder of this process' own when None)."""
    tf = runtime.tensorflow()
    keras = runtime.keras()
    calibration = ""
    folder = nullcontext(str(scratch)) if scratch else tempfile.TemporaryDirectory(prefix="imgsearch-litert-")
    with folder as workdir, runtime.native_stderr_filtered():
        model = build_keras_resnet50(weights, pooling, input_size=input_size)
        saved = Path(workdir) / "saved_model"
        with _quiet_stdout():
            model.export(str(saved), format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if precision == "int8":
            inputs = calibration_inputs(weights.parent, input_size)
            calibration = hashlib.sha256(inputs.tobytes()).hexdigest()
            converter.representative_dataset = lambda: ([preprocess(image[None])] for image in inputs)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        try:
            content = converter.convert()
        except Exception as error:  # noqa: BLE001 - the converter raises many kinds
            raise ConversionError(f"LiteRT conversion ({precision}) failed: {str(error)[:300]}") from None
        del model
        keras.backend.clear_session()
    return bytes(content), calibration


def calibration_inputs(cache_dir: Path, size: int = INPUT_SIZE) -> np.ndarray:
    """(CALIBRATION_IMAGES, size, size, 3) uint8: seeded crops, flips and scales of the
    20 real photos of `imgsearch sample`; the same bytes on every machine."""
    from PIL import Image

    from imgsearch.samples import augment, sample_photos

    photos = sample_photos(cache_dir)
    rng = random.Random(CALIBRATION_SEED)
    sources = [Image.open(photo.path).convert("RGB") for photo in photos]
    images = []
    for number in range(CALIBRATION_IMAGES):
        crop = augment(sources[number % len(sources)], rng, (size, size))
        images.append(np.asarray(crop, dtype=np.uint8))
    return np.stack(images)


class _quiet_stdout:
    """Keras' export prints a summary of the SavedModel to stdout; the CLI's stdout is the user's."""

    def __enter__(self) -> None:
        sys.stdout.flush()
        self._saved = os.dup(1)
        self._null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(self._null, 1)

    def __exit__(self, *exc: object) -> None:
        sys.stdout.flush()
        os.dup2(self._saved, 1)
        os.close(self._saved)
        os.close(self._null)


def interpreter_outputs(interpreter: object, batch: np.ndarray) -> np.ndarray:
    """One pass of `interpreter` (already sized for `len(batch)`) over preprocessed inputs."""
    input_index = interpreter.get_input_details()[0]["index"]  # type: ignore[attr-defined]
    output_index = interpreter.get_output_details()[0]["index"]  # type: ignore[attr-defined]
    interpreter.set_tensor(input_index, batch)  # type: ignore[attr-defined]
    interpreter.invoke()  # type: ignore[attr-defined]
    return np.array(interpreter.get_tensor(output_index), dtype=np.float32)  # type: ignore[attr-defined]


def sized_interpreter(model: Path, batch: int, threads: int, size: int = INPUT_SIZE) -> object:
    """A LiteRT interpreter of `model` taking `batch` images of `size` pixels, XNNPACK on
    `threads` threads."""
    from ai_edge_litert.interpreter import Interpreter

    with runtime.native_stderr_filtered():
        interpreter = Interpreter(model_path=str(model), num_threads=threads)
        input_index = interpreter.get_input_details()[0]["index"]
        interpreter.resize_tensor_input(input_index, [batch, size, size, 3], strict=False)
        interpreter.allocate_tensors()
        warm = np.zeros((batch, size, size, 3), dtype=np.float32)
        for _ in range(2):  # XNNPACK packs weights and plans memory on the first passes
            interpreter_outputs(interpreter, warm)
    return interpreter


def batches(count: int, batch: int) -> Iterator[tuple[int, int]]:
    """(start, size) of full `batch`-sized passes, then single-image passes for the rest:
    at 6 ms an image (int8), up to 7 singles cost less than one padded pass of 8 (49 ms)."""
    start = 0
    while count - start >= batch:
        yield start, batch
        start += batch
    while start < count:
        yield start, 1
        start += 1


class LiteRTEncoder:
    """ResNet50 quantised on LiteRT, with the Keras encoder's interface: `embed` from
    several threads (one pass at a time, searches first), unit vectors out. `input_size`
    and `lock` as the Keras encoder's."""

    def __init__(self, weights: Path, pooling: str = "avg", precision: str = "int8",
                 threads: int | None = None, input_size: int = INPUT_SIZE, lock: PassLock | None = None) -> None:
        self.pooling = pooling
        self.precision = precision
        self.batch_size = BATCH
        self.input_size = input_size
        self.name = encoder_name(pooling, precision, (input_size,))
        self.model_path = converted_model(weights, pooling, precision, input_size)
        self._threads = threads or len(os.sched_getaffinity(0))
        # Two interpreters: resizing one between batch sizes re-plans XNNPACK each time. The
        # batched one is built at its first full batch: building and warming it costs 0.6 CPU-s,
        # a third of an `imgsearch search` of one image, which never passes a batch.
        self._single = sized_interpreter(self.model_path, 1, self._threads, input_size)
        self._batched: object | None = None
        self._lock = lock or PassLock()

    def embed(self, pixels: np.ndarray, *, urgent: bool = False) -> np.ndarray:
        """(N, input_size, input_size, 3) uint8 -> (N, 2048) float32 unit vectors."""
        check_pixels(pixels, self.input_size)
        features = np.zeros((len(pixels), FEATURE_DIM), dtype=np.float32)
        # A search's images take the model in one turn. Taken a pass at a time, the lock was
        # free while the search prepared its next image, so a queued index batch (0.53 s for 8
        # with `dynamic` on plain AVX2) ran between every two of its 57-ms single passes, and
        # under the load test searches waited 6 s (p50).
        turn = self._lock.hold(True) if urgent else nullcontext()
        with turn:
            for start, size in batches(len(pixels), BATCH):
                inputs = preprocess(pixels[start : start + size])
                with nullcontext() if urgent else self._lock.hold(False):
                    interpreter = self._batched_interpreter() if size == BATCH else self._single
                    outputs = interpreter_outputs(interpreter, inputs)
                features[start : start + size] = unit_vectors(outputs)  # GeM's pooling outside the lock
        return features

    def _batched_interpreter(self) -> object:
        """The batch-sized interpreter, built on first use; called with the pass lock held
        (a search's turn or an index batch's pass), so it is built once."""
        if self._batched is None:
            self._batched = sized_interpreter(self.model_path, BATCH, self._threads, self.input_size)
        return self._batched


def _main(arguments: list[str]) -> int:
    """`python -m imgsearch.litert WEIGHTS POOLING PRECISION SIZE OUT`: what `convert_in_child` runs."""
    weights, pooling, precision, size, out = arguments
    try:
        # Its scratch is in the parent's folder, which the parent removes: a child ended by a
        # signal (Ctrl-C, SIGTERM through `_stop_children`) runs no cleanup of its own.
        content, calibration = convert(Path(weights), pooling, precision, int(size), Path(out).parent)
    except WeightsError as error:
        print(error, file=sys.stderr)
        return 1
    Path(out).write_bytes(content)
    print(calibration)
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
