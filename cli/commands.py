"""The handlers behind each `imgsearch` command."""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from imgsearch.decode import EXTENSIONS
from imgsearch.discover import DiscoveryError, canonical_path, discover
from imgsearch.errors import NotFound, UsageError
from imgsearch.progress import Progress
from imgsearch.settings import Settings, check_collection_name, get_settings

if TYPE_CHECKING:
    from imgsearch.collection import Stores
    from imgsearch.searching import Result
    from imgsearch.summary import IndexSummary


def settings() -> Settings:
    return get_settings()


def print_json(value: object) -> None:
    import json

    print(json.dumps(value, indent=2, default=str))


def answer(as_json: bool, figures: object, line: str) -> int:
    """A handler's answer: its figures as JSON with --json, else one line for a person."""
    if as_json:
        print_json(figures)
    else:
        print(line)
    return 0


@contextmanager
def progress_bar(show: bool) -> Iterator[Progress]:
    """A progress bar on the terminal while the block runs, fed (stage, done, total); gone when it
    ends. Without `show` (--json, or no terminal) a callback that does nothing."""
    if not show:
        yield lambda _stage, _done, _total: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
    from rich.progress import Progress as Bar

    # On stderr, the terminal `show` was decided by: stdout may be a file the answer goes to.
    with Bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
             console=Console(stderr=True), transient=True) as bar:
        task_id = bar.add_task("", total=None)
        yield lambda stage, done, total: bar.update(task_id, description=stage, completed=done, total=total)


def _collection(arguments: argparse.Namespace) -> str:
    return arguments.collection or settings().default_table


def _stores() -> Stores:
    from tasks import stores

    return stores.both()


def weights(arguments: argparse.Namespace) -> int:
    from imgsearch.decode import INPUT_SIZE
    from imgsearch.litert import PRECISIONS, converted_model
    from imgsearch.multiscale import sizes_of
    from imgsearch.weights import provision

    current = settings()
    path = provision(current.cache_dir, try_keras=not arguments.no_keras)
    print(f"ResNet50 ImageNet weights ready: {path}")
    # The quantised models are built from the weights once, here rather than on a first search:
    # at 224 pixels for every precision, and at SCALES' other sizes for the one PRECISION names
    # (`int8` only: `dynamic`'s one file serves every size).
    for precision in PRECISIONS:
        sizes = {INPUT_SIZE, *sizes_of(current.scales)} if precision == current.precision else {INPUT_SIZE}
        models = {converted_model(path, current.pooling, precision, size): None for size in sorted(sizes)}
        for model in models:
            print(f"LiteRT {precision} model ready: {model}")
    return 0


def _preflight(path: str, collection: str) -> None:
    """Fail fast, before Prefect starts, on what would fail every chunk anyway."""
    found = discover(path)
    if not found.images:
        raise DiscoveryError(f"no images ({', '.join(sorted(e[1:] for e in EXTENSIONS))}) under {path}")
    from imgsearch.weights import find_weights

    current = settings()
    find_weights(current.cache_dir, current.weights)
    both = _stores()
    both.catalog.ping()
    both.vectors.ping()
    # The flow checks too (API and deployment runs); here a mismatch is one line, not a failed
    # flow run's traceback in Prefect's log.
    from imgsearch.models import name_of

    both.vectors.check_encoder(check_collection_name(collection), name_of(current))


def run_index(path: str, collection: str, chunk_size: int | None, show_progress: bool,
              runner: str = "threads") -> IndexSummary:
    from flows.index import index_images
    from flows.runners import with_runner
    from tasks.prefect_api import detach_temporary_api
    from tasks.progress import ProgressEvent, reporting_to

    index_images = with_runner(index_images, runner)  # type: ignore[arg-type]
    _preflight(path, collection)
    detach_temporary_api()
    if not show_progress:
        return index_images(path=path, collection=collection, chunk_size=chunk_size)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("indexing"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[failed]} failed"),
        TimeRemainingColumn(), transient=False,
    ) as bar:
        task_id = bar.add_task("index", total=None, failed=0)

        def show(event: ProgressEvent) -> None:
            bar.update(task_id, total=event.total, completed=event.processed, failed=event.failed)

        with reporting_to(show):
            return index_images(path=path, collection=collection, chunk_size=chunk_size)


def index(arguments: argparse.Namespace) -> int:
    summary = run_index(
        arguments.path, _collection(arguments), arguments.chunk_size,
        show_progress=not arguments.json and sys.stderr.isatty(), runner=arguments.task_runner,
    )
    from imgsearch.collection import past_lite_limit

    for line in past_lite_limit(_stores(), only=summary.collection):
        print(line, file=sys.stderr)
    if arguments.json:
        print_json(summary.as_json())
        return 0
    print(
        f"{summary.indexed} indexed ({summary.embedded} embedded, {summary.reused} reused), "
        f"{summary.skipped} unchanged, {summary.failed} failed of {summary.found} images "
        f"in {summary.seconds:.2f} s ({summary.images_per_second} images/s) into {summary.collection}"
    )
    for path, reason in summary.failures[:20]:
        print(f"  failed {path}: {reason}")
    if summary.failed > 20:
        print(f"  … and {summary.failed - 20} more")
    return 0


def search(arguments: argparse.Namespace) -> int:
    return _search([Path(image) for image in arguments.images], _collection(arguments), arguments.top_k,
                   arguments.label, arguments.json, min_score=arguments.min_score, expand=arguments.expand)


def _search(images: list[Path], collection: str, top_k: int | None, label: str | None, as_json: bool,
            min_score: float | None = None, expand: int | None = None) -> int:
    """Search by each image (groups of QUERY_BATCH share a model batch and a Milvus search);
    one image prints its results, several print them under each image's path."""
    from imgsearch.expansion import QueryExpansion
    from imgsearch.searching import QUERY_BATCH, encode_queries, nearest_each
    from tasks import stores

    for image in images:
        if not image.is_file():
            raise FileNotFoundError(f"no such image: {image}")
    both, encoder = _stores(), stores.encoder()
    answers = []
    for start in range(0, len(images), QUERY_BATCH):
        group = images[start : start + QUERY_BATCH]
        queries = encode_queries(encoder, [(str(image), image.read_bytes()) for image in group])
        answers += nearest_each(queries, collection, top_k or settings().top_k, both.vectors, both.catalog,
                                label=label, encoder=encoder.name, min_score=min_score,
                                expansion=QueryExpansion.chosen(expand, settings()))
    if as_json:
        rows = [[asdict(result) for result in results] for results in answers]
        print_json(rows[0] if len(images) == 1 else
                   [{"image": str(image), "results": results} for image, results in zip(images, rows, strict=True)])
        return 0
    for image, results in zip(images, answers, strict=True):
        if len(images) > 1:
            print(f"{image}:")
        _print_results(results, collection, False, min_score)
    return 0


def similar(arguments: argparse.Namespace) -> int:
    from imgsearch.expansion import QueryExpansion
    from imgsearch.searching import MOST_EXAMPLES, NEGATIVE_WEIGHT, like_these

    name, both = _collection(arguments), _stores()
    if max(len(arguments.images), len(arguments.unlike)) > MOST_EXAMPLES:
        raise UsageError(f"at most {MOST_EXAMPLES} images to look like and {MOST_EXAMPLES} not to")

    def indexed_id(path: str) -> int:
        record = both.catalog.by_path(name, canonical_path(path))
        if record is None:
            raise NotFound(f"not indexed in {name}: {path} (similar takes indexed images; search takes any)")
        return record.id

    weight = NEGATIVE_WEIGHT if arguments.negative_weight is None else arguments.negative_weight
    results = like_these([indexed_id(p) for p in arguments.images], [indexed_id(p) for p in arguments.unlike],
                         name, arguments.top_k or settings().top_k, both.vectors, both.catalog,
                         negative_weight=weight, label=arguments.label, min_score=arguments.min_score,
                         expansion=QueryExpansion.chosen(arguments.expand, settings()))
    _print_results(results, name, arguments.json, arguments.min_score)
    return 0


def _print_results(results: list[Result], collection: str, as_json: bool, min_score: float | None) -> None:
    if as_json:
        print_json([asdict(result) for result in results])
        return
    if not results:
        print(f"no indexed images in {collection}" if min_score is None else
              f"no indexed image in {collection} at least {min_score:g} similar")
    for rank, result in enumerate(results, start=1):
        print(f"{rank:3d}  {result.score:.4f}  {result.path}  [{', '.join(result.labels)}]")


def export(arguments: argparse.Namespace) -> int:
    from imgsearch.export import export_collection

    both = _stores()
    done = export_collection(_collection(arguments), both.vectors, both.catalog, arguments.out)
    return answer(arguments.json, done.as_dict(), f"exported {done.images} images of {done.collection} "
                  f"({done.dimension}-d float32) to {done.folder}: vectors.npy, records.csv")


def migrate(arguments: argparse.Namespace) -> int:
    from imgsearch.catalog import Catalog
    from imgsearch.migrate import migrate_collection
    from imgsearch.settings import is_lite_uri
    from imgsearch.vectors import VectorStore

    current, name, both = settings(), _collection(arguments), _stores()
    if arguments.to and is_lite_uri(arguments.to) and not arguments.to.endswith(".db"):
        raise UsageError("--to: a Milvus Lite path must end in .db, or use http://HOST:19530")
    target_vectors = (VectorStore(arguments.to, current.milvus_token, current.vector_dimension, current.milvus_index)
                      if arguments.to else None)
    target_catalog = Catalog(arguments.catalog_to) if arguments.catalog_to else None
    with progress_bar(not arguments.json and sys.stderr.isatty()) as progress:
        done = migrate_collection(name, both.vectors, both.catalog, target_vectors, target_catalog,
                                  progress=progress)
    moved = []
    if target_vectors is not None:
        moved.append(f"{done.vectors:,} vectors ({done.vectors_copied:,} copied, {done.vectors_present:,} there "
                     f"already; a sample of {name}'s searches agrees {done.top10_agreement or 0:.0%} in the top 10) "
                     f"to {arguments.to}")
    if target_catalog is not None:
        moved.append(f"{done.records:,} records to {target_catalog.where}")
    # The catalog's URL may hold a password: it is named, not printed.
    use = " and ".join(([f"MILVUS_URI={arguments.to}"] if arguments.to else [])
                       + (["DATABASE_URL to the --catalog-to URL"] if arguments.catalog_to else []))
    return answer(arguments.json, done.as_dict(), f"migrated {name}: {' and '.join(moved)} in {done.seconds:.1f} s; "
                  f"the source is unchanged. To use the copy, set {use}")


def count(arguments: argparse.Namespace) -> int:
    from imgsearch.collection import CollectionCounts, counts

    name = _collection(arguments)
    found = counts(_stores(), name) or CollectionCounts(name)  # the seed's count: 0 for no collection
    return answer(arguments.json, found.as_dict(), f"{found.indexed} images indexed in {name} "
                  f"({found.vectors} vectors, {found.failed} failed, {found.pending} pending)")


def delete(arguments: argparse.Namespace) -> int:
    from imgsearch import collection

    both = _stores()
    name = _collection(arguments)
    records = both.catalog.under_path(name, canonical_path(arguments.path))
    if not records:
        raise NotFound(f"nothing indexed at {arguments.path} in {name}")
    removed = collection.delete(both, name, [record.id for record in records])
    print(f"deleted {removed} image{'s' if removed != 1 else ''} from {name}")
    return 0


def drop(arguments: argparse.Namespace) -> int:
    name = _collection(arguments)
    if not arguments.yes:
        raise UsageError(f"this deletes collection {name} entirely; add --yes to confirm")
    from imgsearch import collection

    collection.drop(_stores(), name, missing_ok=True)
    print(f"dropped {name}")
    return 0


def serve(arguments: argparse.Namespace) -> int:
    import uvicorn

    from imgsearch.weights import find_weights

    current = settings()
    find_weights(current.cache_dir, current.weights)
    if arguments.workers > 1:
        current.require_milvus_server("--workers > 1")
    print(f"imgsearch: serving http://{arguments.host}:{arguments.port}/ (API docs at /docs)",
          file=sys.stderr)
    uvicorn.run("search_app.app:create_app", factory=True, host=arguments.host, port=arguments.port,
                workers=arguments.workers, log_level="info", timeout_graceful_shutdown=10)
    return 0


def up(arguments: argparse.Namespace) -> int:
    from cli.stack import up as start_stack
    from cli.watch import check_roots
    from imgsearch.weights import find_weights

    current = settings()
    find_weights(current.cache_dir, current.weights)
    return start_stack(current.data_dir, arguments.prefect_port, arguments.milvus_port, arguments.port,
                       arguments.sync_path, arguments.detach, check_roots(arguments.watch))


def watch(arguments: argparse.Namespace) -> int:
    from cli.watch import watch as follow
    from imgsearch.weights import find_weights

    current = settings()
    find_weights(current.cache_dir, current.weights)
    return follow(arguments.paths, _collection(arguments), arguments.poll)


def down(arguments: argparse.Namespace) -> int:
    from cli.stack import down as stop_stack

    return stop_stack(settings().data_dir)


def deploy(arguments: argparse.Namespace) -> int:
    from deployments.definitions import prefect_yaml, runner_deployments

    if arguments.write_prefect_yaml:
        arguments.write_prefect_yaml.write_text(prefect_yaml(arguments.sync_path, arguments.collection))
        print(f"wrote {arguments.write_prefect_yaml}")
        return 0
    from prefect import serve as serve_deployments

    # pause_on_shutdown=False: stopping the runner must not leave the schedules paused.
    serve_deployments(*runner_deployments(arguments.sync_path, arguments.collection),
                      pause_on_shutdown=False)
    return 0


def demo(arguments: argparse.Namespace) -> int:
    """The main job on the embedded defaults: index a folder, then search it."""
    from cli.measure import class_names
    from imgsearch.samples import make_voc_sample, recompressed_copy

    current = settings()
    path = arguments.path
    if path is None:
        target = current.data_dir / "sample"
        if not (target / "VOCdevkit").is_dir():
            make_voc_sample(target, 200, current.cache_dir, class_names())
        path = str(target)
    summary = run_index(path, _collection(arguments), None, show_progress=sys.stderr.isatty())
    print(f"indexed {summary.indexed}, unchanged {summary.skipped}, failed {summary.failed} "
          f"of {summary.found} images in {summary.seconds:.2f} s ({summary.images_per_second} images/s)")
    first = discover(path).images[0].path
    with tempfile.TemporaryDirectory() as tmp:
        query = recompressed_copy(Path(first), Path(tmp) / "query.jpg")
        print(f"\nsearching with a resized, recompressed copy of {first}:")
        return _search([query], _collection(arguments), 5, None, as_json=False)
