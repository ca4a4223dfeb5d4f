"""`imgsearch bench`: how fast, measured side by side in one run.

(a) the model's limit, (b) the seed's method, (c) `index` end to end with its
peak memory, (d) a re-run after 1% of the files changed, (e) `/api/search`
over HTTP beside the bare model's single-image time, (f) Milvus search alone,
(g) every PRECISION side by side (speed, and agreement with fp32), (h) duplicate
groups at scale, (i) (c) and (e) again for every other PRECISION. (a), (b) are Keras
FP32; (c)-(e) run with the PRECISION of the environment.
Indexing and serving run as real `imgsearch` processes on a generated
VOC-like corpus; the model measurements run in this process.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import duplicates, end_to_end
from benchmarks.end_to_end import change_files, index_measured, percentile, run_measured, serve_and_measure
from imgsearch import runtime
from imgsearch.settings import PRECISIONS
from imgsearch.samples import make_voc_sample
from imgsearch.settings import get_settings
from imgsearch.weights import find_weights, imagenet_labels


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# XNNPACK's int8 kernels multiply 4 bytes per lane with these; on AVX2 alone they widen to
# 16 bits and int8 gains little over fp32 (measured: 1.7x on a Zen 3 EPYC, 5.9x on a VNNI Xeon).
INT8_DOT_PRODUCT = ("avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm")


def cpu_int8_features() -> list[str]:
    """The int8 dot-product extensions this CPU reports (empty: int8 runs on wider, slower paths)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            flags = set(line.split(":", 1)[1].split())
            return [name for name in INT8_DOT_PRODUCT if name in flags]
    return []


def timed(function: Callable[[], object], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return times


# -- (a) and the single-image time --------------------------------------------------
def model_limit(weights: Path, seconds: float, batches: tuple[int, ...] = (1, 16, 32, 64),
                rounds: int = 3, singles: int = 30) -> dict[str, Any]:
    """Bare ResNet50 forward on already-preprocessed batches: each batch size for `seconds`
    and at least `rounds` batches, then `singles` single images."""
    tf = runtime.tensorflow()
    keras = runtime.keras()

    model = keras.applications.ResNet50(include_top=False, weights=str(weights), pooling="avg")
    forward = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    rng = np.random.default_rng(0)
    rates = {}
    for batch in batches:
        pixels = keras.applications.resnet50.preprocess_input(
            rng.integers(0, 255, (batch, 224, 224, 3)).astype(np.float32))
        tensor = tf.constant(pixels)
        forward(tensor).numpy()  # trace and warm up
        done, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds or done < rounds * batch:
            forward(tensor).numpy()
            done += batch
        rates[batch] = done / (time.perf_counter() - started)
    single = tf.constant(keras.applications.resnet50.preprocess_input(
        rng.integers(0, 255, (1, 224, 224, 3)).astype(np.float32)))
    single_times = timed(lambda: forward(single).numpy(), singles)
    best = max(rates, key=rates.get)  # type: ignore[arg-type]
    return {"images_per_second": rates[best], "best_batch": best,
            "by_batch": {str(k): round(v, 2) for k, v in rates.items()},
            "single_image_ms": 1000 * statistics.median(single_times)}


# -- (b) ------------------------------------------------------------------------------
def seed_method(weights: Path, files: list[Path]) -> dict[str, Any]:
    """The bootcamp's encode.py: load_img + predict, one image at a time, max pooling."""
    keras = runtime.keras()

    model = keras.applications.ResNet50(include_top=False, weights=str(weights), pooling="max",
                                        input_shape=(224, 224, 3))

    def encode(path: Path) -> np.ndarray:
        image = keras.utils.load_img(str(path), target_size=(224, 224))
        array = np.expand_dims(keras.utils.img_to_array(image), axis=0)
        feature = model.predict(keras.applications.resnet50.preprocess_input(array), verbose=0)
        return feature[0] / np.linalg.norm(feature[0])

    encode(files[0])
    started = time.perf_counter()
    for path in files:
        encode(path)
    return {"images_per_second": len(files) / (time.perf_counter() - started), "images": len(files)}


# -- (f) ------------------------------------------------------------------------------
def settle(store: Any, attempts: int = 10) -> None:
    """Flush, release and load the collection, as a restarted service would find it.

    Milvus Lite 3.2 can answer a load right after a flush with "file seems not
    fully written"; the load is retried a few times."""
    MilvusException = runtime.pymilvus().exceptions.MilvusException

    store.client.flush("bench")
    store.client.release_collection("bench")
    for attempt in range(attempts):
        try:
            store.client.load_collection("bench")
            return
        except MilvusException:
            if attempt == attempts - 1:
                raise
            time.sleep(1.0)


def milvus_alone(folder: Path, sizes: list[int], index_type: str) -> dict[str, Any]:
    from imgsearch.vectors import VectorStore

    store = VectorStore(str(folder / f"milvus-{index_type.lower()}.db"), index_type=index_type)
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(500, 2048)).astype(np.float32)
    results, stored = {}, 0
    for size in sizes:
        while stored < size:
            count = min(5000, size - stored)
            vectors = centres[rng.integers(0, 500, count)] + rng.normal(size=(count, 2048)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            store.upsert("bench", list(range(stored, stored + count)), vectors, [["x"]] * count, ["/f"] * count)
            stored += count
        settle(store)
        queries = rng.normal(size=(60, 2048)).astype(np.float32)
        store.search("bench", queries[:1], 10)
        times = [timed(lambda q=q: store.search("bench", q[np.newaxis], 10), 1)[0] for q in queries]
        results[str(size)] = {"p50_ms": 1000 * percentile(times, 50), "p99_ms": 1000 * percentile(times, 99)}
    store.drop("bench")
    store.close()
    return results


# -- (g) ------------------------------------------------------------------------------
def recompressed_query(path: Path) -> np.ndarray:
    """The query (g) asks with for `path`: scaled to 4/5 and saved as JPEG quality 60, decoded."""
    import io

    from PIL import Image

    from imgsearch.decode import decode_image

    with Image.open(path) as image:
        buffer = io.BytesIO()
        image.convert("RGB").resize((image.width * 4 // 5, image.height * 4 // 5)).save(buffer, "JPEG", quality=60)
    return decode_image(buffer.getvalue()).pixels


def precisions(weights: Path, pooling: str, files: list[Path], queries: int, database: int,
               singles: int = 20) -> dict[str, Any]:
    """Every PRECISION (of `pooling`) side by side in this process: images/s over `database` photos (each
    encoder at its own batch), one image's time, and against fp32 the mean cosine and the
    mean overlap of the top-10 of `queries` recompressed copies."""
    from imgsearch.decode import decode_image
    from imgsearch.evaluation import top10, top10_agreement
    from imgsearch.models import build_encoder

    chosen = files[:database]
    pixels = np.stack([decode_image(path.read_bytes()).pixels for path in chosen])
    asked = np.stack([recompressed_query(path) for path in chosen[:queries]])
    figures: dict[str, Any] = {"queries": len(asked), "database": len(pixels)}
    reference: dict[str, np.ndarray] = {}
    for precision in PRECISIONS:
        encoder = build_encoder(weights, pooling, 32, precision)  # type: ignore[arg-type]
        encoder.embed(pixels[:32])
        started = time.perf_counter()
        stored = encoder.embed(pixels)
        rate = len(pixels) / (time.perf_counter() - started)
        single = 1000 * statistics.median(timed(lambda e=encoder: e.embed(pixels[:1], urgent=True), singles))
        found = top10(encoder.embed(asked), stored)
        if precision == "fp32":
            reference = {"stored": stored, "top10": found}
        figures[precision] = {
            "images_per_second": rate, "single_image_ms": single, "batch": encoder.batch_size,
            "cosine_to_fp32": float((stored * reference["stored"]).sum(axis=1).mean()),
            "top10_agreement": top10_agreement(reference["top10"], found),
        }
    for precision in PRECISIONS:
        figures[precision]["speedup"] = figures[precision]["images_per_second"] / figures["fp32"]["images_per_second"]
    return figures


class StageClock:
    """Wall and CPU seconds of each stage: this process's and those of the commands it waited for
    (`os.times`). What a stage costs decides where the bench, and the suite's smoke run of it, can be
    made cheaper; the report keeps them under "stage_seconds"."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.say = say
        self.spent: dict[str, dict[str, float]] = {}
        self._name: str | None = None
        self._wall = self._cpu = 0.0

    @staticmethod
    def _cpu_now() -> float:
        times = os.times()
        return times.user + times.system + times.children_user + times.children_system

    def start(self, name: str, text: str) -> None:
        self.stop()
        self.say(text)
        self._name, self._wall, self._cpu = name, time.perf_counter(), self._cpu_now()

    def stop(self) -> dict[str, dict[str, float]]:
        if self._name is not None:
            self.spent[self._name] = {
                "wall": round(time.perf_counter() - self._wall, 2), "cpu": round(self._cpu_now() - self._cpu, 2)}
            self._name = None
        return self.spent


def run(quick: bool, count: int | None, workdir: Path | None, json_path: Path | None,
        smoke: bool = False) -> dict[str, Any]:
    """The whole benchmark; `smoke` shrinks every stage to seconds (CI checks it yields figures)."""
    settings = get_settings()
    weights = find_weights(settings.cache_dir, settings.weights)
    quick = quick or smoke
    images = count or (24 if smoke else 300 if quick else 2000)
    root = workdir or Path(tempfile.mkdtemp(prefix="imgsearch-bench-"))
    say = lambda text: print(f"[bench] {text}", file=sys.stderr, flush=True)
    clock = StageClock(say)
    clock.start("corpus", f"generating {images} VOC-like photos under {root}")
    year = make_voc_sample(root / "corpus", images, settings.cache_dir, imagenet_labels(settings.cache_dir), seed=1)
    files = sorted((year / "JPEGImages").glob("*.jpg"))
    env = {**os.environ, "DATA_DIR": str(root / "data"), "PREFECT_HOME": str(root / "prefect"),
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    for name in ("MILVUS_URI", "DATABASE_URL", "MILVUS_HOST", "MYSQL_HOST"):
        env.pop(name, None)
    report: dict[str, Any] = {"cpu": cpu_model(), "cpu_int8": cpu_int8_features(), "cores": os.cpu_count(), "images": images, "quick": quick,
                              "precision": settings.precision}

    clock.start("a", "(a) model limit")
    # The smoke run checks that figures come out, not what they are: two batch sizes, one round.
    report["a_model"] = (model_limit(weights, 0.0, (1, 8), rounds=1, singles=3) if smoke else
                         model_limit(weights, seconds=3 if quick else 8))
    clock.start("b", "(b) the seed's method")
    report["b_seed"] = seed_method(weights, files[: 8 if smoke else 40 if quick else 100])
    clock.start("c", "(c) imgsearch index, end to end")
    report["c_index"] = index_measured(root / "corpus", env)
    clock.start("d", "(d) re-run after 1% changed")
    changed = change_files(files, 0.01, seed=2)
    done, reseconds, _ = run_measured(["index", str(root / "corpus"), "--json"], env)
    rerun = json.loads(done.stdout)
    report["d_rerun"] = {"changed": len(changed), "embedded": rerun["embedded"], "wall_seconds": reseconds,
                         "flow_seconds": rerun["seconds"]}
    clock.start("e", "(e) /api/search over HTTP")
    from imgsearch.samples import recompressed_copy

    query = recompressed_copy(files[len(files) // 2], root / "query.jpg", scale=1.0, quality=75).read_bytes()
    requests = 8 if smoke else 40 if quick else 200
    report["e_search"] = serve_and_measure(env, query, requests)
    clock.start("f", "(f) Milvus search alone")
    sizes = [2000] if smoke else [17125] if quick else [17125, 100000]
    report["f_milvus"] = {kind: milvus_alone(root, sizes, kind) for kind in ("FLAT", "IVF_FLAT")}

    clock.start("g", "(g) every precision against fp32")
    # Smoke: 12 photos and 6 queries per precision (bf16's Keras runs at a fraction of fp32's speed here).
    report["g_precision"] = precisions(weights, settings.pooling, files, queries=6 if smoke else 200,
                                       database=12 if smoke else len(files) if quick else 1000,
                                       singles=3 if smoke else 20)

    clock.start("h", "(h) duplicate groups")
    report["h_duplicates"] = {"at_scale": duplicates.at_scale(root, 2000 if smoke else 20000),
                              "thresholds": duplicates.thresholds(weights, settings.pooling, settings.precision,
                                                                  5 if smoke else 20)}

    clock.start("i", "(i) every precision end to end")
    # The smoke run checks the stage with fp32 beside the configured precision; the others run all four.
    chosen = [p for p in PRECISIONS if not smoke or p in ("fp32", settings.precision)]
    report["i_end_to_end"] = end_to_end.every_precision(
        root / "corpus", env, chosen, query, requests,
        measured={settings.precision: {"index": report["c_index"], "search": report["e_search"]}})
    report["stage_seconds"] = clock.stop()
    report["i_targets"] = end_to_end.targets(report["i_end_to_end"], report["g_precision"], settings.precision)

    a, b, c = (report["a_model"]["images_per_second"], report["b_seed"]["images_per_second"],
               report["c_index"]["images_per_second"])
    e = report["e_search"]
    report["ratios"] = {
        "c/a": c / a, "c_wall/a": report["c_index"]["wall_images_per_second"] / a, "c/b": c / b,
        "d/c": report["d_rerun"]["wall_seconds"] / report["c_index"]["wall_seconds"],
        "e_p50/single": e["c1"]["p50_ms"] / report["a_model"]["single_image_ms"],
        "qps8/qps1": e["c8"]["qps"] / e["c1"]["qps"],
        # Against the bare model of the precision (c) and (e) ran with.
        "c/g": c / report["g_precision"][settings.precision]["images_per_second"],
        "e_p50/g_single": e["c1"]["p50_ms"] / report["g_precision"][settings.precision]["single_image_ms"],
    }
    print(render(report))
    if json_path:
        json_path.write_text(json.dumps(report, indent=2))
    return report


def run_scale(sizes: list[int], backends: list[str], workdir: Path | None, json_path: Path | None,
              plot_path: Path | None) -> dict[str, Any]:
    """The scale stage alone (`imgsearch bench --scale`): its table, JSON and plot."""
    from benchmarks import scale

    root = workdir or Path(tempfile.mkdtemp(prefix="imgsearch-scale-"))
    root.mkdir(parents=True, exist_ok=True)
    say = lambda text: print(f"[bench] {text}", file=sys.stderr, flush=True)
    report = scale.run(sizes, backends, root, say=say)
    report.update(cpu=cpu_model(), cores=os.cpu_count(), precision=get_settings().precision)
    print(scale.render(report))
    if json_path:
        json_path.write_text(json.dumps(report, indent=2))
    if plot_path:
        scale.plot(report, plot_path)
    return report


def run_watch(quick: bool, smoke: bool, workdir: Path | None, json_path: Path | None) -> dict[str, Any]:
    """The watch stage alone (`imgsearch bench --watch`): copy -> searchable, a burst, idle cost."""
    from benchmarks import watch

    root = workdir or Path(tempfile.mkdtemp(prefix="imgsearch-watch-"))
    root.mkdir(parents=True, exist_ok=True)
    say = lambda text: print(f"[bench] {text}", file=sys.stderr, flush=True)
    sizes = (2, 8, 200) if smoke else (5, 100, 10_000) if quick else (watch.SINGLES, watch.BURST, watch.TREE_FILES)
    report = watch.run(root, *sizes, say=say, idle_seconds=3 if smoke else watch.IDLE_SECONDS)
    report.update(cpu=cpu_model(), cores=os.cpu_count())
    print(watch.render(report))
    if json_path:
        json_path.write_text(json.dumps(report, indent=2))
    return report


def render(report: dict[str, Any]) -> str:
    a, b, c, d, e = (report[k] for k in ("a_model", "b_seed", "c_index", "d_rerun", "e_search"))
    r = report["ratios"]
    rows = [
        ("machine", f"{report['cpu']}, {report['cores']} cores, int8 dot product: "
                    f"{', '.join(report.get('cpu_int8') or ['none'])}; corpus {report['images']} photos 500x375"),
        ("(a) model limit", f"{a['images_per_second']:.1f} images/s at batch {a['best_batch']} "
                            f"(by batch: {a['by_batch']}); single image {a['single_image_ms']:.1f} ms"),
        ("(b) seed's method", f"{b['images_per_second']:.1f} images/s (load_img + predict, one at a time)"),
        ("(c) index end to end", f"{c['images_per_second']:.1f} images/s in the flow ({c['flow_seconds']:.1f} s), "
                                 f"{c['wall_images_per_second']:.1f} images/s wall ({c['wall_seconds']:.1f} s); "
                                 f"peak RSS {c['peak_rss_mb']:.0f} MB"),
        ("(d) re-run, 1% changed", f"{d['wall_seconds']:.1f} s wall ({d['flow_seconds']:.1f} s in the flow), "
                                   f"{d['embedded']} of {d['changed']} changed files embedded"),
        ("(e) /api/search, c=1", f"p50 {e['c1']['p50_ms']:.1f} ms, p99 {e['c1']['p99_ms']:.1f} ms, "
                                 f"{e['c1']['qps']:.1f} QPS, {e['c1']['cores_busy']:.2f} cores busy"),
        ("(e) /api/search, c=8", f"p50 {e['c8']['p50_ms']:.1f} ms, p99 {e['c8']['p99_ms']:.1f} ms, "
                                 f"{e['c8']['qps']:.1f} QPS, {e['c8']['cores_busy']:.2f} cores busy"),
    ]
    for kind, sizes in report["f_milvus"].items():
        for size, figures in sizes.items():
            rows.append((f"(f) Milvus Lite {kind}, {int(size):,} vectors",
                         f"p50 {figures['p50_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms"))
    g = report["g_precision"]
    for precision in ("fp32", "bf16", "dynamic", "int8"):
        p = g[precision]
        rows.append((f"(g) PRECISION={precision}",
                     f"{p['images_per_second']:.1f} images/s at batch {p['batch']} (x{p['speedup']:.2f}), "
                     f"single image {p['single_image_ms']:.1f} ms; to fp32: cosine {p['cosine_to_fp32']:.4f}, "
                     f"top-10 agreement {p['top10_agreement']:.3f} ({g['queries']} queries in "
                     f"{g['database']} images)"))
    rows += duplicates.render(report["h_duplicates"])
    rows += end_to_end.render(report["i_end_to_end"], report["i_targets"])
    rows += [
        ("c/a (target >= 0.95)", f"{r['c/a']:.3f} (wall: {r['c_wall/a']:.3f})"),
        ("c/b (target >= 1.5)", f"{r['c/b']:.2f}"),
        ("d/c (target <= 0.05)", f"{r['d/c']:.3f}"),
        ("e p50 / single image", f"{r['e_p50/single']:.2f} "
                                 f"(target p50 <= 1.15 x {a['single_image_ms']:.1f} + 10 = "
                                 f"{1.15 * a['single_image_ms'] + 10:.1f} ms)"),
        ("QPS(8)/QPS(1) (target >= 1.5)", f"{r['qps8/qps1']:.2f}"),
        (f"c / (g) {report['precision']} model", f"{r['c/g']:.3f} ((c), (e) ran with PRECISION={report['precision']})"),
        (f"e p50 / (g) {report['precision']} single", f"{r['e_p50/g_single']:.2f}"),
    ]
    if "stage_seconds" in report:  # JSON written before the clock have none
        rows.append(("seconds by stage, wall / CPU", ", ".join(
            f"{name} {spent['wall']:.1f} / {spent['cpu']:.1f}" for name, spent in report["stage_seconds"].items())))
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"| {name.ljust(width)} | {value} |" for name, value in rows)
