"""`imgsearch bench --scale N[,N...]`: the cost curve of one collection as it grows.

One collection is filled through the product's own stores (`VectorStore.upsert`, `Catalog.upsert`)
up to each N in turn and measured there: insert rate, seal/index time, search over HTTP
(`imgsearch serve` as a process) and in Milvus alone, recall@10 against exact search, peak RSS of
each process, disk per image, count, export, a re-run's plan, and duplicate groups.

The vectors: R real ones, the configured encoder's vectors of R sample photos (`imgsearch sample`'s
crops of real photos), then synthetic ones near them. Synthetic row n is the unit vector of
w·a + (1-w)·b + s·g/√d, where a and b are two real vectors drawn at random, w ~ U(0.5, 1), g a
standard normal vector and s ~ U(0.3, 0.8): a blend of two photos' features plus noise, whose
cosine to its nearest real vector is about 0.8-0.95, as near photos' are. Rows are made in blocks
from a seed per block and kept in a raw float32 file beside the collection, read back a block at a
time for exact search, so this process' memory does not grow with N.
"""

from __future__ import annotations

import math
import os
import shutil
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.end_to_end import percentile, search_latency, serving
from benchmarks.memory import MemoryWatch, mb
from benchmarks.milvus_backends import Backend, folder_bytes, start_backend

BLOCK = 10_000  # rows generated, written and read back at a time
DIMENSION = 2048
COLLECTION = "scale"
QUERIES = 100  # Milvus-alone queries for latency and recall
REQUESTS = 60  # /api/search requests at one client
EXPAND = 2  # the query expansion measured beside plain search (QUERY_EXPANSION's measured best)
# Export and duplicates read every vector back (`vector_reads`: about 9,400 rows/s from a
# standalone), then duplicates compare them (n^1.5, `near_pairs`): both are timed at every size.
FULL_SCANS_UP_TO = 1_000_000
DUPLICATES_UP_TO = 1_000_000
QUIET_WITHIN = 3 * 3600  # seconds a server may take to compact and re-index before the figures are taken anyway


def parse_sizes(text: str) -> list[int]:
    """'20000,100k,1M' -> [20000, 100000, 1000000], ascending."""
    sizes = []
    for part in text.split(","):
        part = part.strip().lower()
        scale = {"k": 1_000, "m": 1_000_000}.get(part[-1:], 1)
        number = float(part[:-1] if scale > 1 else part)
        if number * scale < 1000:
            raise ValueError(f"a size must be at least 1000, got {part!r}")
        sizes.append(int(number * scale))
    return sorted(set(sizes))


# -- the vectors ----------------------------------------------------------------------------
@dataclass
class Corpus:
    """Real vectors (their photos' paths) and the file that holds every row made so far."""

    real: np.ndarray
    files: list[Path]
    path: Path
    rows: int = 0

    def __post_init__(self) -> None:
        """Rows an earlier run made (a run stopped, then resumed on the same workdir) are kept."""
        if self.path.exists():
            self.rows = self.path.stat().st_size // (DIMENSION * 4)

    def extend(self, rows: int, seed: int = 11) -> None:
        """Make rows up to `rows`: the real ones first, then synthetic blocks."""
        with open(self.path, "ab") as out:
            while self.rows < rows:
                count = min(BLOCK, rows - self.rows)
                out.write(self._make(self.rows, count, seed).astype("<f4").tobytes())
                self.rows += count

    def _make(self, start: int, count: int, seed: int) -> np.ndarray:
        real = self.real[start : start + count]  # the real rows come first
        made = near(self.real, count - len(real), np.random.default_rng((seed, start)))
        return np.concatenate([real, made]) if len(real) else made

    def blocks(self, rows: int) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, matrix) of rows 0..rows-1, a block at a time."""
        for start in range(0, rows, BLOCK):
            count = min(BLOCK, rows - start)
            yield start, np.fromfile(self.path, dtype="<f4", count=count * DIMENSION,
                                     offset=start * DIMENSION * 4).reshape(count, DIMENSION)

    def path_of(self, row: int) -> str:
        return str(self.files[row]) if row < len(self.files) else f"/scale/{row // 1000:04d}/{row:07d}.jpg"


def near(real: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` synthetic vectors near `real` (the module's docstring says how)."""
    a = real[rng.integers(0, len(real), count)]
    b = real[rng.integers(0, len(real), count)]
    w = rng.uniform(0.5, 1.0, (count, 1)).astype(np.float32)
    s = rng.uniform(0.3, 0.8, (count, 1)).astype(np.float32)
    rows = w * a + (1 - w) * b + s * rng.standard_normal((count, DIMENSION), dtype=np.float32) / np.sqrt(DIMENSION)
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def exact_top10(corpus: Corpus, rows: int, queries: np.ndarray) -> np.ndarray:
    """Row numbers of each query's 10 nearest rows by inner product, a block at a time."""
    best_scores = np.full((len(queries), 10), -np.inf, dtype=np.float32)
    best_rows = np.zeros((len(queries), 10), dtype=np.int64)
    for start, block in corpus.blocks(rows):
        scores = queries @ block.T
        merged_scores = np.concatenate([best_scores, scores], axis=1)
        merged_rows = np.concatenate([best_rows, np.arange(start, start + len(block))[None, :].repeat(len(queries), 0)],
                                     axis=1)
        keep = np.argsort(-merged_scores, axis=1)[:, :10]
        best_scores = np.take_along_axis(merged_scores, keep, axis=1)
        best_rows = np.take_along_axis(merged_rows, keep, axis=1)
    return best_rows


# -- the stage ------------------------------------------------------------------------------
class StageClock:
    """A `Progress` that notes when each stage is first reported: each one's seconds, from that
    moment to the next stage's (the first from the clock's making, the last to `seconds()`)."""

    def __init__(self) -> None:
        self.created = time.perf_counter()
        self.started: dict[str, float] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        self.started.setdefault(stage, time.perf_counter())

    def seconds(self) -> dict[str, float]:
        marks = [self.created, *list(self.started.values())[1:], time.perf_counter()]
        return {stage: end - start for stage, start, end in zip(self.started, marks[:-1], marks[1:], strict=True)}


def timed(call: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    result = call()
    return result, time.perf_counter() - started


def fill(corpus: Corpus, store: Any, catalog: Any, start: int, stop: int) -> dict[str, float]:
    """Rows start..stop-1 into both stores, as an index run writes them (vectors, then records)."""
    from imgsearch.catalog import INDEXED

    vector_seconds = record_seconds = 0.0
    for first, block in corpus.blocks(stop):
        if first + len(block) <= start:
            continue
        block = block[max(0, start - first):]
        first = max(first, start)
        for offset in range(0, len(block), 2000):
            part = block[offset : offset + 2000]
            rows = range(first + offset, first + offset + len(part))
            ids = [row + 1 for row in rows]
            folders = [os.path.dirname(corpus.path_of(row)) for row in rows]
            records = [{"id": row + 1, "path": corpus.path_of(row), "labels": ["scale"], "folder": folder,
                        "status": INDEXED, "size": 100_000 + row, "mtime": 1_700_000_000_000_000_000 + row,
                        "sha256": f"{row:064x}", "width": 500, "height": 375} for row, folder in zip(rows, folders)]
            started = time.perf_counter()
            store.upsert(COLLECTION, ids, part, [["scale"]] * len(ids), folders)
            vector_seconds += time.perf_counter() - started
            started = time.perf_counter()
            catalog.upsert(COLLECTION, records)
            record_seconds += time.perf_counter() - started
    added = stop - start
    if not added:  # stored by an earlier run of this workdir: its rates are in its report
        return {"added": 0}
    return {"added": added, "vectors_per_second": added / vector_seconds, "records_per_second": added / record_seconds,
            "rows_per_second": added / (vector_seconds + record_seconds)}


def settle(backend: Backend, store: Any) -> dict[str, float]:
    """Seal Lite's memtable, or flush a server and wait, first until its index covers every row
    (`searchable_seconds`: searches see them all), then until nothing is pending (`quiet_seconds`):
    after a million upserts a standalone compacts their segments and indexes the results again for
    half an hour on the same cores, and a latency taken meanwhile is not the steady state's."""
    started = time.perf_counter()
    if store.is_lite:  # embedded, or `milvus-lite server`: no index builds in the background
        store.seal(COLLECTION)
        seconds = time.perf_counter() - started
        return {"searchable_seconds": seconds, "quiet_seconds": seconds}
    store.client.flush(COLLECTION)
    figures: dict[str, float] = {}
    deadline = time.monotonic() + QUIET_WITHIN
    while time.monotonic() < deadline:
        described = store.client.describe_index(COLLECTION, "vector")
        if "searchable_seconds" not in figures and \
                int(described.get("indexed_rows", 0)) >= int(described.get("total_rows", 0)):
            figures["searchable_seconds"] = time.perf_counter() - started
        if "searchable_seconds" in figures and int(described.get("pending_index_rows", 0)) == 0:
            figures["quiet_seconds"] = time.perf_counter() - started
            return figures
        time.sleep(2.0)
    figures.setdefault("searchable_seconds", time.perf_counter() - started)
    figures["quiet_seconds"] = float("nan")  # still busy: said in the table, measured anyway
    return figures


def plan_rerun(corpus: Corpus, store: Any, catalog: Any, rows: int) -> dict[str, float]:
    """`plan_index` over the collection's paths with 1% of them changed (size and mtime), as a
    re-run of `index` on the same tree plans it: the catalog's part of a re-run."""
    from imgsearch.discover import Discovery, FoundImage
    from imgsearch.indexing import plan_index

    changed = set(range(0, rows, 100))
    images = [FoundImage(corpus.path_of(row), 100_000 + row + (row in changed),
                         1_700_000_000_000_000_000 + row, ("scale",), os.path.dirname(corpus.path_of(row)))
              for row in range(rows)]
    plan, seconds = timed(lambda: plan_index(Discovery("/scale", images), catalog, store, COLLECTION, 256))
    todo = sum(len(chunk) for chunk in plan.chunks)
    return {"seconds": seconds, "to_index": todo, "unchanged": plan.unchanged}


def milvus_alone(corpus: Corpus, store: Any, rows: int, rng: np.random.Generator) -> dict[str, float]:
    """Latency of `VectorStore.search` (top 10, one query at a time) and recall@10 against exact
    search, for QUERIES new vectors made as the synthetic rows are (not stored)."""
    queries = near(corpus.real, QUERIES, rng)
    store.search(COLLECTION, queries[:1], 10)
    found, times = [], []
    for query in queries:
        hits, seconds = timed(lambda q=query: store.search(COLLECTION, q[np.newaxis], 10)[0])
        found.append([hit.id - 1 for hit in hits])
        times.append(seconds)
    exact = exact_top10(corpus, rows, queries)
    recall = statistics.mean(len(set(f) & set(e.tolist())) / 10 for f, e in zip(found, exact, strict=True))
    return {"p50_ms": 1000 * percentile(times, 50), "p99_ms": 1000 * percentile(times, 99), "recall_at_10": recall}


def measure_at(backend: Backend, corpus: Corpus, rows: int, started_rows: int, workdir: Path,
               memory: MemoryWatch, say: Callable[[str], None]) -> dict[str, Any]:
    from imgsearch.catalog import Catalog
    from imgsearch.duplicates import duplicate_groups
    from imgsearch.models import name_of
    from imgsearch.export import export_collection
    from imgsearch.settings import get_settings
    from imgsearch.vectors import VectorStore

    figures: dict[str, Any] = {"images": rows}
    memory.reset()
    corpus.extend(rows)
    store = VectorStore(backend.uri, index_type=os.environ.get("MILVUS_INDEX", ""))
    catalog = Catalog(f"sqlite:///{backend.data / 'catalog.db'}")
    settings = get_settings()
    # Recorded as an index run records it, so that `imgsearch serve` accepts the collection.
    store.ensure_collection(COLLECTION, name_of(settings))
    say(f"{backend.name} {rows:,}: filling from {started_rows:,}")
    figures["insert"] = fill(corpus, store, catalog, started_rows, rows)
    figures["settle"] = settle(backend, store)
    figures["index_type"] = store._index_of(COLLECTION)
    say(f"{backend.name} {rows:,}: searching Milvus alone")
    figures["milvus"] = milvus_alone(corpus, store, rows, np.random.default_rng(rows))
    (_, vector_count), seconds = timed(lambda: (catalog.count(COLLECTION), store.count(COLLECTION)))
    figures["count_seconds"] = seconds
    assert vector_count == rows, f"{vector_count} vectors stored, {rows} written"
    say(f"{backend.name} {rows:,}: planning a re-run with 1% changed")
    figures["plan"] = plan_rerun(corpus, store, catalog, rows)
    if rows <= FULL_SCANS_UP_TO:
        say(f"{backend.name} {rows:,}: export")
        out = workdir / f"export-{backend.name}-{rows}"
        _, figures["export_seconds"] = timed(lambda: export_collection(COLLECTION, store, catalog, out))
        shutil.rmtree(out, ignore_errors=True)
    figures["rss_mb"] = {name: mb(value) for name, value in memory.sample().items()}
    figures["anonymous_mb"] = {name: mb(value) for name, value in memory.anonymous().items()}
    store.close()
    say(f"{backend.name} {rows:,}: /api/search over HTTP")
    figures["http"] = http_search(backend, corpus, memory)
    if rows <= DUPLICATES_UP_TO:
        say(f"{backend.name} {rows:,}: duplicate groups")
        store = VectorStore(backend.uri)
        stages = StageClock()
        groups, figures["duplicates_seconds"] = timed(lambda: duplicate_groups(COLLECTION, store, catalog,
                                                                                progress=stages))
        figures["duplicates_stages"] = stages.seconds()
        figures["duplicate_groups"] = len(groups)
        store.close()
    catalog.close()
    figures["peak_rss_mb"] = {name: mb(value) for name, value in memory.peaks.items()}
    figures["disk_bytes_per_image"] = (folder_bytes(backend.disk) + folder_bytes(backend.data / "catalog.db")) / rows
    return figures


def http_search(backend: Backend, corpus: Corpus, memory: MemoryWatch) -> dict[str, Any]:
    """`imgsearch serve` on the collection, searched at one client with one of the real photos,
    then as often with query expansion (`expand=EXPAND`: two searches and a read of EXPAND vectors)."""
    env = {**os.environ, "DATA_DIR": str(backend.data), "MILVUS_URI": backend.uri,
           "DATABASE_URL": f"sqlite:///{backend.data / 'catalog.db'}", "DEFAULT_TABLE": COLLECTION,
           "PREFECT_HOME": str(backend.data / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    image = corpus.files[len(corpus.files) // 2].read_bytes()
    with serving(env) as (url, server):
        memory.watch("search app", server.pid)
        search_latency(url, image, 5, 1)  # warm up
        figures = search_latency(url, image, REQUESTS, 1)
        expanded = search_latency(url, image, REQUESTS, 1, {"expand": EXPAND})
        memory.sample()
        memory.forget("search app")
    return {**{key: figures[key] for key in ("p50_ms", "p99_ms", "qps", "phases_ms")},
            "expanded": {"expand": EXPAND, **{key: expanded[key] for key in ("p50_ms", "p99_ms", "phases_ms")}}}


def real_vectors(root: Path, count: int, say: Callable[[str], None]) -> tuple[np.ndarray, list[Path]]:
    """The configured encoder's vectors of `count` sample photos."""
    from imgsearch.decode import decode_image
    from imgsearch.models import build_encoder
    from imgsearch.multiscale import sizes_of
    from imgsearch.samples import make_voc_sample
    from imgsearch.settings import get_settings
    from imgsearch.weights import find_weights, imagenet_labels

    settings = get_settings()
    say(f"encoding {count} sample photos for the real vectors")
    year = make_voc_sample(root / "photos", count, settings.cache_dir, imagenet_labels(settings.cache_dir), seed=3)
    files = sorted((year / "JPEGImages").glob("*.jpg"))
    # The encoder the settings name (SCALES too): the collection records its name.
    encoder = build_encoder(find_weights(settings.cache_dir, settings.weights), settings.pooling,
                            settings.batch_size, settings.precision, sizes_of(settings.scales))
    vectors = [encoder.embed(np.stack([decode_image(f.read_bytes(), encoder.input_size).pixels
                                       for f in files[start : start + 32]]))
               for start in range(0, len(files), 32)]
    return np.concatenate(vectors).astype(np.float32), files


def stored_rows(backend: Backend) -> int:
    from imgsearch.vectors import VectorStore

    store = VectorStore(backend.uri)
    try:
        return store.count(COLLECTION)
    finally:
        store.close()


def run(sizes: list[int], backends: list[str], workdir: Path, real: int = 300,
        say: Callable[[str], None] = print) -> dict[str, Any]:
    """Every backend grown through `sizes`; the figures by backend, then by size."""
    vectors, files = real_vectors(workdir, real, say)
    report: dict[str, Any] = {"sizes": sizes, "real_vectors": len(vectors), "backends": {}}
    memory = MemoryWatch()
    memory.watch("bench (fills, and holds Milvus Lite)", os.getpid())
    with memory.running():
        for name in backends:
            backend = start_backend(name, workdir / name)
            if backend.server_pid:
                memory.watch(backend.server_name, backend.server_pid)
            corpus = Corpus(vectors, files, backend.data / "rows.f32")
            report["backends"][name] = figures = {}
            try:
                stored = stored_rows(backend)  # a workdir filled by an earlier, stopped run resumes
                for size in sizes:
                    if size < stored:
                        continue
                    figures[str(size)] = measure_at(backend, corpus, size, stored, workdir, memory, say)
                    stored = size
                    say(render_one(name, figures[str(size)]))
            finally:
                memory.forget(backend.server_name)
                backend.stop()
    return report


def render_one(backend: str, f: dict[str, Any]) -> str:
    peaks = ", ".join(f"{name} {value:,.0f}" + steady(f, name) for name, value in f["peak_rss_mb"].items())
    duplicates = f"{f['duplicates_seconds']:.1f} s" if "duplicates_seconds" in f else "not run"
    if "duplicates_stages" in f:
        duplicates += " (" + ", ".join(f"{stage} {seconds:.0f}" for stage, seconds in f["duplicates_stages"].items()) + ")"
    export = f"{f['export_seconds']:.1f} s" if "export_seconds" in f else "not run"
    phases = f["http"]["phases_ms"]
    expanded = f["http"].get("expanded")
    with_expansion = (f"; αQE k={expanded['expand']}: {expanded['p50_ms']:.1f} / {expanded['p99_ms']:.1f} ms"
                      if expanded else "")
    insert = f["insert"]
    filled = (f"{insert['rows_per_second']:,.0f} rows/s (vectors {insert['vectors_per_second']:,.0f}/s, records "
              f"{insert['records_per_second']:,.0f}/s)" if insert["added"] else "stored by an earlier run")
    return (f"| {backend} {f['index_type']} | {f['images']:,} | {filled} | "
            f"{settled(f)} | {f['http']['p50_ms']:.1f} / {f['http']['p99_ms']:.1f} ms "
            f"(model {phases.get('encode', 0):.1f}, stores {phases.get('search', 0):.1f}){with_expansion} | "
            f"{f['milvus']['p50_ms']:.1f} / {f['milvus']['p99_ms']:.1f} ms | {f['milvus']['recall_at_10']:.3f} | "
            f"{peaks} MB | {f['disk_bytes_per_image'] / 1024:.1f} KB | {duplicates} | {f['count_seconds']:.2f} s / "
            f"{export} | {f['plan']['seconds']:.1f} s |")


def steady(f: dict[str, Any], name: str) -> str:
    """' (steady R, anonymous A)': RSS after the scans, and of it what is not file-backed (older
    reports have no anonymous figure)."""
    if name not in f["rss_mb"]:
        return ""
    anonymous = f.get("anonymous_mb", {}).get(name)
    return f" (steady {f['rss_mb'][name]:,.0f}" + (f", anonymous {anonymous:,.0f})" if anonymous is not None else ")")


def settled(f: dict[str, Any]) -> str:
    """'searchable after S s, quiet after Q s'; older reports had one figure."""
    if "settle_seconds" in f:
        return f"{f['settle_seconds']:.1f} s"
    searchable, quiet = f["settle"]["searchable_seconds"], f["settle"]["quiet_seconds"]
    if math.isnan(quiet):
        return f"{searchable:.1f} s (still compacting after {QUIET_WITHIN // 60} min)"
    return f"{searchable:.1f} s" + (f" (quiet after {quiet:.0f} s)" if quiet - searchable > 1 else "")


HEADER = ("| Milvus, index | images | insert (vectors + records) | seal / index build | /api/search p50 / p99 (server's median phases) "
          "| Milvus alone p50 / p99 | recall@10 | peak RSS (after the fill and searches) | disk per image | duplicates | count / export "
          "| re-run plan (1% changed) |\n|---|---|---|---|---|---|---|---|---|---|---|---|")


def render(report: dict[str, Any]) -> str:
    lines = [HEADER]
    for backend, by_size in report["backends"].items():
        lines += [render_one(backend, figures) for figures in by_size.values()]
    return "\n".join(lines)


def plot(report: dict[str, Any], path: Path) -> None:
    """Log-log: /api/search and Milvus-alone p50 against N, and the largest peak RSS against N."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (latency, memory) = plt.subplots(1, 2, figsize=(11, 4.2))
    for backend, by_size in report["backends"].items():
        sizes = [int(size) for size in by_size]
        runs = list(by_size.values())
        label = f"{backend} {runs[-1]['index_type']}"
        latency.plot(sizes, [r["http"]["p50_ms"] for r in runs], "o-", label=f"{label}: /api/search p50")
        latency.plot(sizes, [r["milvus"]["p50_ms"] for r in runs], "s--", label=f"{label}: Milvus alone p50")
        memory.plot(sizes, [max(r["peak_rss_mb"].values()) / 1024 for r in runs], "o-",
                    label=f"{label}: largest process")
        memory.plot(sizes, [sum(r["peak_rss_mb"].values()) / 1024 for r in runs], "s--", label=f"{label}: all processes")
    latency.axhline(60, color="grey", linewidth=0.8, linestyle=":")
    for axes, title, unit in ((latency, "search latency", "ms"), (memory, "peak RSS", "GB")):
        axes.set_xscale("log")
        axes.set_yscale("log")
        axes.set_xlabel("images in the collection")
        axes.set_ylabel(unit)
        axes.set_title(title)
        axes.grid(True, which="both", linewidth=0.3)
        axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
