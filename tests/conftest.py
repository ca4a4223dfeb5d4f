"""Shared fixtures: real weights, real photos, real Milvus Lite, SQLite and MariaDB, real Prefect."""

from __future__ import annotations

import os
import random
import resource
import uuid
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as imgsearch/__init__.py, before numpy loads

import pytest
from PIL import Image

from imgsearch.resources import release_stores
from imgsearch.samples import Photo, augment, sample_photos
from imgsearch.settings import get_settings
from imgsearch.weights import provision

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"
MYSQL_ADMIN_URL = os.environ.get("IMGSEARCH_TEST_MYSQL_URL", "mysql+pymysql://root:@127.0.0.1:3306/test")


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto` (pyproject.toml): two test processes a core, at most 4. A test process keeps about
    half a core busy (it waits on commands and servers starting): on 2 cores, 3 processes took a
    fresh clone's tests from 12:15 to 10:57, and 4 from 6:54 to 6:31 on a later, faster machine,
    whose cores 3 had left a fifth idle (2026-12-05, docs/tests.md)."""
    return min(4, 2 * (os.cpu_count() or 1))


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """Under `--dist loadfile` (the default, see pyproject.toml), every test on a Milvus
    standalone (a `milvus-standalone` parameter) runs in one process: two standalones
    on one machine share fixed ports (index coordinator, web port) and the second one
    never starts. Everything else goes one file to a process."""
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class StandaloneTogether(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return scope_of(nodeid)

    return StandaloneTogether(config, log)


# The files (and the standalone's group) that take longest, longest first (wall seconds of one
# run, 2026-12-05): the scheduler hands them out first (`--no-loadscope-reorder` in pyproject.toml;
# by default xdist starts the files with the most tests first, which left the longest single-test
# files to the last minutes, one process busy and the other idle). The rest follow in file order.
LONGEST_FIRST = (
    "tests/test_cli.py", "tests/test_bench_smoke.py", "tests/test_cli_signals.py", "milvus-standalone",
    "tests/test_bench_watch.py", "tests/test_stack_signals.py", "tests/test_watch.py", "tests/test_stack.py",
    "tests/faults/test_load.py", "tests/test_catalog.py", "tests/test_litert.py", "tests/test_settings_cli.py",
    "tests/test_deployments.py",
)


def scope_of(nodeid: str) -> str:
    """The unit the scheduler hands to one process: a file, or every test on the standalone."""
    return "milvus-standalone" if "milvus-standalone" in nodeid else nodeid.split("::")[0]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {scope: number for number, scope in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(scope_of(item.nodeid), len(rank)))  # stable: file order kept


CPU_LOG = os.environ.get("IMGSEARCH_TEST_CPU", "")  # a folder: where each test's CPU seconds go
if CPU_LOG:
    Path(CPU_LOG).mkdir(parents=True, exist_ok=True)  # a missing one failed every test process


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[object]:
    """With IMGSEARCH_TEST_CPU=FOLDER, each test's CPU seconds (its process and every child it
    waited for: commands, servers stopped; and the test process' own part) go to
    FOLDER/<pid>.tsv; `python -m tests.cpu_report FOLDER` sums them by file. Wall time hides where
    a 2-core suite spends its CPU: a test waiting on a server's start costs wall time and no CPU,
    a subprocess' imports the reverse."""
    if not CPU_LOG:
        return (yield)
    own_before, children_before = _cpu_seconds(resource.RUSAGE_SELF), _cpu_seconds(resource.RUSAGE_CHILDREN)
    try:
        return (yield)
    finally:
        own = _cpu_seconds(resource.RUSAGE_SELF) - own_before
        children = _cpu_seconds(resource.RUSAGE_CHILDREN) - children_before
        with open(Path(CPU_LOG) / f"{os.getpid()}.tsv", "a") as log:
            log.write(f"{item.nodeid}\t{own + children:.2f}\t{own:.2f}\n")


def _cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def cache_dir() -> Path:
    return get_settings().cache_dir


@pytest.fixture(scope="session")
def weights() -> Path:
    """The no-top weights in the user's cache (provisioned by setup.sh, or here)."""
    return provision(cache_dir())


@pytest.fixture(scope="session")
def photos() -> list[Photo]:
    """foolbox's 20 ImageNet photos (512x512 JPEGs with known classes)."""
    return sample_photos(cache_dir())


def sealed_rows(collection: str) -> int:
    """Rows of an embedded Milvus Lite collection written into segments (not its memtable)."""
    import pyarrow.parquet

    from imgsearch.settings import get_settings

    segments = (Path(get_settings().milvus_uri) / "collections" / collection).rglob("data_*.parquet")
    return sum(pyarrow.parquet.read_metadata(segment).num_rows for segment in segments)


def write_folder(root: Path, photos: list[Photo], count: int, seed: int = 1) -> list[Path]:
    """`count` distinct 500x375 JPEGs in one sub-folder per source photo's class."""
    rng = random.Random(seed)
    written = []
    for number in range(count):
        photo = photos[number % len(photos)]
        folder = root / f"class_{photo.class_id}"
        folder.mkdir(parents=True, exist_ok=True)
        with Image.open(photo.path) as source:
            image = augment(source.convert("RGB"), rng)
        path = folder / f"photo_{number:04d}.jpg"
        image.save(path, quality=rng.randint(75, 95))
        written.append(path)
    return written


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Embedded defaults in a fresh data directory: Milvus Lite + SQLite."""
    data = tmp_path / "data"
    monkeypatch.setenv("DATA_DIR", str(data))
    for name in ("MILVUS_URI", "DATABASE_URL", "MILVUS_HOST", "MYSQL_HOST", "DEFAULT_TABLE"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield data
    release_stores()
    get_settings.cache_clear()


def mysql_available() -> bool:
    try:
        from sqlalchemy import create_engine, text

        engine = create_engine(MYSQL_ADMIN_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
        return True
    except Exception:  # noqa: BLE001 - any failure means: not reachable
        return False


@pytest.fixture(scope="session")
def mysql_server_url() -> Iterator[str]:
    """A fresh MariaDB/MySQL database for this session, dropped afterwards."""
    if not mysql_available():
        if os.environ.get("IMGSEARCH_REQUIRE_MYSQL"):
            pytest.fail(f"IMGSEARCH_REQUIRE_MYSQL is set but no MySQL answers at {MYSQL_ADMIN_URL}")
        pytest.skip("no MySQL/MariaDB reachable (set IMGSEARCH_REQUIRE_MYSQL=1 to fail instead)")
    from sqlalchemy import create_engine, text

    name = f"imgsearch_test_{uuid.uuid4().hex[:8]}"
    admin = create_engine(MYSQL_ADMIN_URL)
    with admin.begin() as connection:
        # Identifiers cannot be bound parameters; `name` is generated above, hex only.
        connection.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    base = MYSQL_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}?charset=utf8mb4"
    finally:
        release_stores()
        with admin.begin() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
        admin.dispose()


@pytest.fixture(params=["sqlite", "mysql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each catalog test runs on SQLite and on MariaDB; MariaDB rows are cleared after."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'catalog.db'}"
        return
    url = request.getfixturevalue("mysql_server_url")
    yield url
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM images"))
    engine.dispose()
    release_stores()


@pytest.fixture(scope="session")
def milvus_standalone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Milvus standalone (PyPI `milvus`, 2.3.5) on a free loopback port."""
    try:
        import milvus  # noqa: F401 - only whether it is installed
    except ImportError:
        pytest.skip("the `milvus` package (Milvus standalone) is not installed: ./setup.sh --test")
    from benchmarks.milvus_backends import start_standalone

    server = start_standalone(tmp_path_factory.mktemp("milvus-standalone"))
    _standalone.append(server)
    try:
        yield f"http://127.0.0.1:{server.listen_port}"
    finally:
        _stop_standalone()


_standalone: list[object] = []  # the session's running Milvus standalone, until its last test is done


def _stop_standalone() -> None:
    release_stores()
    while _standalone:
        _standalone.pop().stop()  # type: ignore[attr-defined]


@pytest.hookimpl(trylast=True)  # after the test's own fixtures are torn down (a store closed, a collection dropped)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Stop the Milvus standalone once the last test on it is done, not at the end of the session:
    idle, it costs its process 1.4 CPU-s a minute on 2 cores that the rest of the suite is short
    of. Every test on it has `milvus-standalone` in its id (the scheduler above keeps them in one
    process), so the last such id of the session's items is the last test that needs it."""
    if _standalone and item.nodeid == _last_standalone_test(item.session):
        _stop_standalone()


def _last_standalone_test(session: pytest.Session) -> str:
    return next((i.nodeid for i in reversed(session.items) if "milvus-standalone" in i.nodeid), "")


@pytest.fixture(params=["lite", "milvus-standalone"])
def any_milvus(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Milvus Lite in a file of the test's own, or the session's Milvus standalone."""
    if request.param == "lite":
        return str(tmp_path / "m.db")
    return request.getfixturevalue("milvus_standalone")


def shared_folder(tmp_path_factory: pytest.TempPathFactory) -> Path | None:
    """The folder every test process of an xdist run shares (`basetemp.parent`, which no other
    pytest run shares); None without xdist (`-n 0`)."""
    return tmp_path_factory.getbasetemp().parent if os.environ.get("PYTEST_XDIST_WORKER") else None


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A real, temporary Prefect API for the flow runs of the session, shared by its test processes
    (tests/shared_prefect_api.py)."""
    from tests.shared_prefect_api import shared_prefect_api

    with shared_prefect_api(shared_folder(tmp_path_factory)):
        yield


@pytest.fixture(scope="session")
def prefect_api_url(prefect_api: None) -> str:
    """The session's Prefect API, for subprocesses to report to. A command given no PREFECT_API_URL
    starts Prefect's temporary API, which costs about 8 s of CPU each time (an `imgsearch index` of
    one photo: 11.3 s of CPU without, 3.3 s with); the tests of that default path keep it (the
    signal tests, the demo, a watcher stopped during its catch-up), the others share this one."""
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    assert url, "prefect_test_harness sets PREFECT_API_URL"
    return str(url)


@pytest.fixture(scope="session")
def prefect_home_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PREFECT_HOME whose database is already migrated: a stack test copies it
    into DATA_DIR/prefect so that its Prefect server starts in ~6 s, not ~13 s. One for
    the whole run (the first test process that needs it migrates it, under a lock in
    xdist's shared folder): each migration costs ~5 CPU-s."""
    import subprocess
    import sys

    from tests.shared_prefect_api import locked_record

    folder = shared_folder(tmp_path_factory) or tmp_path_factory.getbasetemp()
    home = folder / "prefect-home-template"
    with locked_record(folder, "prefect-home-template") as migrated:
        if not migrated.exists():
            home.mkdir(exist_ok=True)
            env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
            env.pop("PREFECT_API_URL", None)
            subprocess.run([str(Path(sys.executable).parent / "prefect"), "server", "database", "upgrade", "-y"],
                           env=env, check=True, capture_output=True, timeout=300)
            migrated.write_text("{}")
    return home


def seed_prefect_home(template: Path, data_dir: Path) -> None:
    import shutil

    shutil.copytree(template, data_dir / "prefect")

