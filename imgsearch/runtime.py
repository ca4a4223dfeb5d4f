"""The process environment imgsearch's native libraries need, and the one way to import them.

- numpy's OpenBLAS keeps worker threads spinning after each BLAS call; on 2
  cores they took a core from TensorFlow and slowed a search's forward pass
  from 52 to 89 ms (measured in `imgsearch serve`). It must be set before numpy
  is first imported, which is why `imgsearch/__init__.py` calls `configure()`.
- pymilvus reads the environment variable `MILVUS_URI` when it is imported (and
  loads a `.env` it finds by walking up from its own install folder), and
  refuses anything but `http(s)://` there. imgsearch's setting of the same name
  may be a Milvus Lite path, so pymilvus is imported with both turned off.
- Milvus Lite keeps inserted rows in an in-memory table and seals it into a
  segment when it holds `MILVUS_LITE_MEMTABLE_MEMORY_LIMIT_BYTES` (read once,
  when milvus_lite is imported; 128 MB by default, about 16,000 vectors).
  Sealing turns every row into Python objects, so the process' peak grows with
  the table: an index run of 20,000 photos peaked at 2.46-2.47 GB. Sealed at
  16 MB (2,000 vectors) it peaked at 1.57-1.67 GB at the same speed (BENCHMARKS.md,
  "20,000 photos: Milvus Lite's segment size").
- TensorFlow's C++ side prints absl/CUDA start-up lines on a CPU-only machine
  ("Could not find cuda drivers", "failed call to cuInit", ...) whatever
  `TF_CPP_MIN_LOG_LEVEL` says. They are caught at the file-descriptor level
  while TensorFlow is imported and probes its devices, and only lines that are
  not that noise are written back. `IMGSEARCH_LOG_LEVEL=debug` (the CLI's
  `--verbose`) shows everything.
"""

from __future__ import annotations

import gc
import logging
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

LOG_LEVEL_VARIABLE = "IMGSEARCH_LOG_LEVEL"
_IMPORT_LOCK = threading.RLock()

# absl's log line: severity, date, time, thread, file:line] message.
_ABSL_LINE = re.compile(rb"^[IWEF]\d{4} [\d:.]+\s+\d+ [\w./-]+:\d+\] ")
_ABSL_PREAMBLE = b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
# What LiteRT and its converter print on every start or conversion (imgsearch/litert.py).
_LITERT_LINES = (b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.", b"fully_quantize: ")
# Error-level lines that only say there is no GPU (or register CUDA plugins twice).
_NO_GPU = re.compile(rb"cuInit|cuda|CUDA|cuDNN|cuFFT|cuBLAS|TensorRT", re.IGNORECASE)


LITE_MEMTABLE_VARIABLE = "MILVUS_LITE_MEMTABLE_MEMORY_LIMIT_BYTES"
LITE_MEMTABLE_BYTES = 16 * 2**20
DEFAULT_GC_THRESHOLD = 700  # CPython's own for its youngest generation
GC_THRESHOLD = 10_000


def configure() -> None:
    """Environment defaults for this process and its children; a user's own value wins."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    # Milvus Lite reads its variable when it is imported, before the settings read `.env`,
    # so a value in `.env` is looked up here.
    lite_memtable = _from_dotenv(LITE_MEMTABLE_VARIABLE) or str(LITE_MEMTABLE_BYTES)
    os.environ.setdefault(LITE_MEMTABLE_VARIABLE, lite_memtable)
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if verbose() else "2")
    # CPython collects its youngest objects every 700 new containers: the imports a command starts
    # with (Prefect, pymilvus, SQLAlchemy; about a million objects, nearly none of them garbage)
    # then ran 530 collections, 4 of them full, 8% of their CPU; at 10,000 they run 51 and
    # cyclic garbage still goes within thousands of objects (docs/tests.md). A threshold a program
    # set itself is kept.
    if gc.get_threshold()[0] == DEFAULT_GC_THRESHOLD:
        gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])


def _from_dotenv(name: str) -> str | None:
    """`name` as `.env` in the working folder sets it (where the settings read it), if it does."""
    if name in os.environ:
        return None
    try:
        if not os.path.isfile(".env"):
            return None
        from dotenv import dotenv_values

        return dotenv_values(".env").get(name) or None
    except (OSError, UnicodeDecodeError):
        return None  # the settings report an unreadable `.env` when they read it


def verbose() -> bool:
    return os.environ.get(LOG_LEVEL_VARIABLE, "").strip().lower() == "debug"


def is_noise(line: bytes) -> bool:
    """A TensorFlow start-up line a user of a CPU-only machine has no use for."""
    if line.startswith(_ABSL_PREAMBLE) or line.startswith(_LITERT_LINES):
        return True
    if not _ABSL_LINE.match(line):
        return False
    return line[:1] in (b"I", b"W") or bool(_NO_GPU.search(line))


@contextmanager
def native_stderr_filtered() -> Iterator[None]:
    """Catch what is written to file descriptor 2 (by C++ or Python, any thread)
    and write back all but TensorFlow's start-up noise when the block ends."""
    if verbose():
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            kept = [line for line in caught.read().splitlines(keepends=True) if not is_noise(line)]
            if kept:
                os.write(2, b"".join(kept))


def tensorflow() -> ModuleType:
    """`import tensorflow`, quietly; its devices are probed here so that the
    CUDA probe's lines fall inside the filter too."""
    with _IMPORT_LOCK:
        if "tensorflow" in sys.modules and "keras" in sys.modules:
            return sys.modules["tensorflow"]
        configure()
        with native_stderr_filtered():
            import keras  # noqa: F401 - imported here so that its TensorFlow start-up is filtered too
            import tensorflow as tf

            tf.config.list_physical_devices()
        loaded: ModuleType = tf
        return loaded


def keras() -> ModuleType:
    tensorflow()
    import keras as keras_module

    loaded: ModuleType = keras_module
    return loaded


def pymilvus() -> ModuleType:
    """`import pymilvus` with its import-time reading of `MILVUS_URI` and `.env` turned off."""
    with _IMPORT_LOCK:
        if "pymilvus" in sys.modules:
            return sys.modules["pymilvus"]
        saved = {name: os.environ.get(name) for name in ("MILVUS_URI", "PYTHON_DOTENV_DISABLED")}
        # An empty MILVUS_URI makes pymilvus keep its own default, and python-dotenv
        # never overrides a variable that is set; disabling dotenv keeps the rest
        # of a `.env` out of this process' environment as well.
        os.environ["MILVUS_URI"] = ""
        os.environ["PYTHON_DOTENV_DISABLED"] = "1"
        try:
            import pymilvus as module
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
        # pymilvus logs every failed call, with a traceback, before raising it. imgsearch names
        # the failure in one line (vectors._errors), and a read that vector_reads tries again is
        # no failure at all: pymilvus' own lines show with IMGSEARCH_LOG_LEVEL=debug only.
        if os.environ.get(LOG_LEVEL_VARIABLE, "").strip().lower() != "debug":
            logging.getLogger("pymilvus.decorators").setLevel(logging.CRITICAL)
        loaded: ModuleType = module
        return loaded


def child_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """An environment for a child process that imports pymilvus on its own (a
    `milvus-lite server`): no `MILVUS_URI` for its import-time parser to refuse."""
    env = dict(os.environ if base is None else base)
    env["MILVUS_URI"] = ""
    env["PYTHON_DOTENV_DISABLED"] = "1"
    return env
