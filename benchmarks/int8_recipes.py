"""Can full int8 agree with fp32 to 0.95? Variants of `imgsearch/litert.py`'s int8 recipe.

    .venv/bin/imgsearch sample /tmp/q/corpus --count 1000 --seed 3
    .venv/bin/python -m benchmarks.int8_recipes /tmp/q/corpus --workdir /tmp/q [--only NAME ...]

Each variant is converted in a child process (as `imgsearch weights` does) and compared
with Keras fp32 as the bench's stage (g) does: 1,000 photos stored, the first 200
recompressed as queries, the overlap of their top-10 (`bench_g`); and the overlap of every
photo's leave-one-out top-10 among the 1,000 (`loo`, as `imgsearch eval` measures). The
variants: the recipe as it is; its last layers kept in float (through the converter's
QuantizationDebugger: the final add, then the last 1x1 convolution, then the whole
residual path of the last stage); and calibration on 40 or 400 images, or another seed.
`--stats` writes the converter's per-layer error table (rmse / scale) as CSV.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from imgsearch import runtime
from imgsearch.litert import CALIBRATION_IMAGES, CALIBRATION_SEED

# The layers kept in float, by their output tensor's name in the converted model (the
# last add is the network's output; conv5_block*_3 and conv5_block1_0 feed the residual path).
_CONV5 = "resnet50_1/conv5_block{}"
FLOAT_TAILS = {
    "float-last-add": ["StatefulPartitionedCall_1:0"],
    "float-last-conv": ["StatefulPartitionedCall_1:0", "3_3_bn"],
    "float-conv5-residual": ["StatefulPartitionedCall_1:0", "3_3_bn", "2_3_bn", "2_out", "1_3_bn", "1_out",
                             "1_0_bn"],
}
CALIBRATIONS = {"recipe": (CALIBRATION_IMAGES, CALIBRATION_SEED), "calibrate-40": (40, CALIBRATION_SEED),
                "calibrate-400": (400, CALIBRATION_SEED), "seed-5": (CALIBRATION_IMAGES, 5)}
QUERIES, DATABASE = 200, 1000


def _tensor_names(model_content: bytes, wanted: list[str]) -> list[str]:
    """Full tensor names of the converted model that end a `wanted` fragment's op."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model_content)
    names = [interpreter._get_tensor_details(index, 0)["name"]  # an op's output, not a weight
             for op in interpreter._get_ops_details() for index in op["outputs"]]
    found = []
    for fragment in wanted:
        if fragment.startswith("Stateful"):
            found.append(fragment)
            continue
        part = fragment.split("_", 1)
        prefix = _CONV5.format(part[0]) + "_" + part[1]
        found.extend(name for name in names if name.startswith(prefix))
    return found


def _int8_converter(saved_model: str, inputs: np.ndarray) -> object:
    """The converter as `imgsearch/litert.py` sets it up for `int8`, calibrated on `inputs`."""
    from imgsearch import litert

    tf = runtime.tensorflow()
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([litert.preprocess(x[None])] for x in inputs)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return converter


def _debugger(converter: object, inputs: np.ndarray, denylisted: list[str] | None = None) -> object:
    from imgsearch import litert

    tf = runtime.tensorflow()
    options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=denylisted) if denylisted else None
    return tf.lite.experimental.QuantizationDebugger(
        converter=converter, debug_dataset=lambda: ([litert.preprocess(x[None])] for x in inputs),
        debug_options=options)


def _saved_model_and_inputs(workdir: str, calibration: tuple[int, int]) -> tuple[str, np.ndarray]:
    from imgsearch import litert
    from imgsearch.encoder import build_keras_resnet50
    from imgsearch.weights import find_weights

    weights = find_weights(_cache_dir())
    litert.CALIBRATION_IMAGES, litert.CALIBRATION_SEED = calibration
    build_keras_resnet50(weights, "gem").export(f"{workdir}/saved", format="tf_saved_model", verbose=False)
    return f"{workdir}/saved", litert.calibration_inputs(weights.parent)


def convert(out: Path, calibration: tuple[int, int], float_tail: list[str]) -> None:
    """One variant, in this (fresh) process."""
    tf = runtime.tensorflow()
    with tempfile.TemporaryDirectory() as workdir:
        saved, inputs = _saved_model_and_inputs(workdir, calibration)
        converter = _int8_converter(saved, inputs)
        content = converter.convert()  # type: ignore[attr-defined]
        if float_tail:
            converter.target_spec.supported_ops = [  # type: ignore[attr-defined]
                tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
            debugger = _debugger(converter, inputs[:4], _tensor_names(content, float_tail))
            content = debugger.get_nondebug_quantized_model()  # type: ignore[attr-defined]
    out.write_bytes(content)


def layer_statistics(out: Path) -> None:
    """The converter's error table of every quantised layer, measured on 40 calibration images."""
    with tempfile.TemporaryDirectory() as workdir:
        saved, inputs = _saved_model_and_inputs(workdir, CALIBRATIONS["recipe"])
        debugger = _debugger(_int8_converter(saved, inputs), inputs[:40])
        debugger.run()  # type: ignore[attr-defined]
        with open(out, "w") as table:
            debugger.layer_statistics_dump(table)  # type: ignore[attr-defined]


def _cache_dir() -> Path:
    from imgsearch.settings import get_settings

    return get_settings().cache_dir


def pixels(corpus: Path, workdir: Path) -> tuple[np.ndarray, np.ndarray]:
    """The stored photos and the recompressed queries, as the encoders take them (cached)."""
    cache = workdir / "pixels.npz"
    if cache.exists():
        saved = np.load(cache)
        return saved["stored"], saved["queries"]
    from benchmarks.bench import recompressed_query
    from imgsearch.decode import decode_image
    from imgsearch.discover import discover

    files = [Path(image.path) for image in discover(corpus).images][:DATABASE]
    stored = np.stack([decode_image(path.read_bytes()).pixels for path in files])
    queries = np.stack([recompressed_query(path) for path in files[:QUERIES]])
    np.savez(cache, stored=stored, queries=queries)
    return stored, queries


def measure(model: Path, stored: np.ndarray, queries: np.ndarray, reference: dict[str, np.ndarray]) -> dict[str, float]:
    from imgsearch.evaluation import leave_one_out_top10, top10, top10_agreement
    from imgsearch.litert import BATCH, interpreter_outputs, preprocess, sized_interpreter
    from imgsearch.pooling import unit_vectors

    interpreter = sized_interpreter(model, BATCH, len(os.sched_getaffinity(0)))

    def embed(batch: np.ndarray) -> np.ndarray:
        out = []
        for start in range(0, len(batch) - len(batch) % BATCH, BATCH):
            out.append(unit_vectors(interpreter_outputs(interpreter, preprocess(batch[start : start + BATCH]))))
        return np.concatenate(out)

    started = time.perf_counter()
    vectors = embed(stored)
    rate = len(vectors) / (time.perf_counter() - started)
    asked = embed(queries)
    searched = top10_agreement(top10(reference["queries"], reference["stored"]), top10(asked, vectors))
    among = top10_agreement(leave_one_out_top10(reference["stored"]), leave_one_out_top10(vectors))
    return {"images_per_second": round(rate, 1),
            "cosine_to_fp32": round(float((vectors * reference["stored"]).sum(axis=1).mean()), 5),
            "bench_g": round(searched, 4), "loo": round(among, 4)}


def fp32_reference(stored: np.ndarray, queries: np.ndarray, workdir: Path) -> dict[str, np.ndarray]:
    cache = workdir / "fp32.npz"
    if not cache.exists():
        from imgsearch.models import build_encoder
        from imgsearch.weights import find_weights

        encoder = build_encoder(find_weights(_cache_dir()), "gem", 32, "fp32")
        np.savez(cache, stored=encoder.embed(stored), queries=encoder.embed(queries))
    saved = np.load(cache)
    return {"stored": saved["stored"], "queries": saved["queries"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path, nargs="?")
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--only", nargs="*", help="variant names (default: all)")
    parser.add_argument("--stats", action="store_true", help="write the per-layer error table and stop")
    parser.add_argument("--convert-one", nargs=2, metavar=("NAME", "OUT"), help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    arguments.workdir.mkdir(parents=True, exist_ok=True)
    variants = {**{name: (calibration, []) for name, calibration in CALIBRATIONS.items()},
                **{name: (CALIBRATIONS["recipe"], tail) for name, tail in FLOAT_TAILS.items()}}
    if arguments.convert_one:
        name, out = arguments.convert_one
        convert(Path(out), *variants[name])
        return
    if arguments.stats:
        layer_statistics(arguments.workdir / "layers.csv")
        print(arguments.workdir / "layers.csv")
        return
    if arguments.corpus is None:
        parser.error("a corpus folder is needed (imgsearch sample DEST --count 1000)")
    stored, queries = pixels(arguments.corpus, arguments.workdir)
    reference = fp32_reference(stored, queries, arguments.workdir)
    for name in arguments.only or variants:
        model = arguments.workdir / f"{name}.tflite"
        if not model.exists():  # a fresh process each: Keras names layers by what the process built before
            subprocess.run([sys.executable, "-m", "benchmarks.int8_recipes", "--workdir", str(arguments.workdir),
                            "--convert-one", name, str(model)], env=runtime.child_environment(), check=True,
                           capture_output=True)
        print(json.dumps({"variant": name, **measure(model, stored, queries, reference)}), flush=True)


if __name__ == "__main__":
    main()
