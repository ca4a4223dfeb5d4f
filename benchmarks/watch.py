"""The watch stage (`imgsearch bench --watch`): how soon a photo copied into a watched folder
answers `/api/search` as its own top hit, through the documented set-up (`imgsearch up --watch`).

1. Singles: photos copied one at a time into the watched folder, a second apart; for each, the
   time from the copy to the first `/api/search` (with the photo itself, top 1) that returns it.
2. A burst: BURST photos copied at once; the time until the collection counts them all, against
   the target (BURST / index images/s + 10 s), index images/s measured by `imgsearch index` of
   the same photos into another collection of the same stack.
3. Idle: the watcher's CPU and RSS over IDLE_SECONDS on a tree of TREE_FILES files in
   TREE_FOLDERS folders (not images, so that its catch-up has nothing to embed: the cost of
   watching does not depend on what the files hold), with inotify and with polling.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from benchmarks.end_to_end import percentile

IMGSEARCH = str(Path(sys.executable).parent / "imgsearch")
SINGLES = 20
BURST = 1000
TREE_FILES = 100_000
TREE_FOLDERS = 1_000
IDLE_SECONDS = 30


def free_ports(count: int) -> list[int]:
    from imgsearch.processes import free_port

    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def stack_env(root: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("PREFECT_API", "MILVUS_", "MYSQL_", "DATABASE_URL", "DEFAULT_TABLE"))}
    env.update(DATA_DIR=str(root / "data"), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    return env


def top_hit(url: str, photo: Path, collection: str | None = None) -> str | None:
    params = {"top_k": 1, **({"collection": collection} if collection else {})}
    answer = httpx.post(f"{url}/api/search", params=params, files={"image": (photo.name, photo.read_bytes())},
                        timeout=60)
    if answer.status_code != 200 or not answer.json()["results"]:
        return None
    return str(answer.json()["results"][0]["path"])


def count(url: str, collection: str) -> int:
    answer = httpx.get(f"{url}/api/collections/{collection}", timeout=60)
    return int(answer.json()["count"]) if answer.status_code == 200 else 0


def singles(url: str, photos: list[Path], watched: Path, say: Callable[[str], None]) -> dict[str, Any]:
    seconds = []
    for number, photo in enumerate(photos):
        target = watched / "singles" / f"single_{number:03d}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        shutil.copy(photo, target)
        while top_hit(url, target) != str(target):
            if time.perf_counter() - started > 120:
                raise RuntimeError(f"{target} not searchable after 120 s")
            time.sleep(0.05)
        seconds.append(time.perf_counter() - started)
        say(f"single {number + 1}/{len(photos)}: {seconds[-1]:.2f} s")
        time.sleep(1.0)
    return {"photos": len(seconds), "p50_s": percentile(seconds, 50), "p99_s": percentile(seconds, 99),
            "max_s": max(seconds), "seconds": seconds}


def burst(url: str, photos: list[Path], watched: Path, collection: str, before: int) -> dict[str, Any]:
    folder = watched / "burst"
    staging = watched.parent / "burst-staging"
    staging.mkdir(exist_ok=True)
    for number, photo in enumerate(photos):  # copied to the same disk first: the burst is a `cp -r`
        shutil.copy(photo, staging / f"burst_{number:04d}.jpg")
    started = time.perf_counter()
    subprocess.run(["cp", "-r", str(staging), str(folder)], check=True)
    copied = time.perf_counter() - started
    while count(url, collection) < before + len(photos):
        if time.perf_counter() - started > 1800:
            raise RuntimeError("the burst was not indexed within 30 minutes")
        time.sleep(0.25)
    seconds = time.perf_counter() - started
    checked = [folder / f"burst_{number:04d}.jpg" for number in range(0, len(photos), max(1, len(photos) // 10))]
    found = sum(top_hit(url, path) == str(path) for path in checked)
    return {"photos": len(photos), "copy_seconds": copied, "searchable_seconds": seconds,
            "top_hit_checked": len(checked), "top_hit_found": found}


def index_rate(root: Path, env: dict[str, str], photos: Path) -> float:
    """`imgsearch index` of the burst's photos into a collection of its own, on the same stack."""
    done = subprocess.run([IMGSEARCH, "index", str(photos), "--collection", "rate_probe", "--json"], env=env,
                          capture_output=True, text=True, check=True, timeout=3600)
    return float(json.loads(done.stdout)["images_per_second"])


def idle_cost(root: Path, polling: bool, files: int, say: Callable[[str], None],
              seconds: float = IDLE_SECONDS) -> dict[str, Any]:
    """CPU share and RSS of `imgsearch watch` idle on a tree of `files` files."""
    import psutil

    tree = root / "tree"
    folders = max(1, files // (TREE_FILES // TREE_FOLDERS))
    if not tree.exists():
        for number in range(files):
            folder = tree / f"folder_{number % folders:04d}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"note_{number:06d}.xmp").write_text("x")
    env = stack_env(root / ("idle-poll" if polling else "idle-inotify"))
    process = subprocess.Popen([IMGSEARCH, "watch", str(tree), *(["--poll", "2"] if polling else [])], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("watching "):
                break
        watcher = psutil.Process(process.pid)
        time.sleep(min(5.0, seconds))  # the catch-up's flow-run logs settle
        before = watcher.cpu_times()
        time.sleep(seconds)
        after = watcher.cpu_times()
        cpu = (after.user - before.user) + (after.system - before.system)
        rss = watcher.memory_info().rss
        say(f"idle {'polling' if polling else 'inotify'}: {cpu:.2f} CPU s in {seconds:g} s, RSS {rss / 2**20:.0f} MB")
        return {"files": files, "folders": folders + 1, "seconds": seconds, "cpu_percent": 100 * cpu / seconds,
                "rss_mb": rss / 2**20}
    finally:
        os.killpg(process.pid, 15)
        process.wait(timeout=60)


def run(root: Path, singles_count: int, burst_count: int, tree_files: int,
        say: Callable[[str], None], idle_seconds: float = IDLE_SECONDS) -> dict[str, Any]:
    from imgsearch.samples import make_voc_sample
    from imgsearch.settings import get_settings

    settings = get_settings()
    say(f"generating {singles_count + burst_count} photos under {root}")
    year = make_voc_sample(root / "corpus", singles_count + burst_count, settings.cache_dir, seed=3)
    photos = sorted((year / "JPEGImages").glob("*.jpg"))
    watched = root / "watched"
    watched.mkdir(parents=True, exist_ok=True)
    prefect, milvus, app = free_ports(3)
    env = stack_env(root)
    say("imgsearch up --watch (Prefect server, Milvus Lite server, search app, runner, watcher)")
    subprocess.run([IMGSEARCH, "up", "--detach", "--prefect-port", str(prefect), "--milvus-port", str(milvus),
                    "--port", str(app), "--watch", str(watched)], env=env, check=True, timeout=900,
                   capture_output=True, text=True)
    url = f"http://127.0.0.1:{app}"
    report: dict[str, Any] = {"precision": settings.precision, "singles": {}, "burst": {}}
    try:
        log = root / "data" / "logs" / "watch.log"
        deadline = time.monotonic() + 600
        while "watching " not in (log.read_text() if log.exists() else ""):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the watcher did not start: {log}")
            time.sleep(0.5)
        collection = settings.default_table
        say(f"{singles_count} photos, one at a time")
        report["singles"] = singles(url, photos[:singles_count], watched, say)
        say(f"{burst_count} photos at once")
        report["burst"] = burst(url, photos[singles_count:], watched, collection, count(url, collection))
        say("index images/s of the same photos (imgsearch index, same stack)")
        stacked = {**env, "PREFECT_API_URL": f"http://127.0.0.1:{prefect}/api",
                   "MILVUS_URI": f"http://127.0.0.1:{milvus}"}
        rate = index_rate(root, stacked, watched.parent / "burst-staging")
        report["burst"]["index_images_per_second"] = rate
        report["burst"]["target_seconds"] = burst_count / rate + 10
    finally:
        subprocess.run([IMGSEARCH, "down"], env=env, check=False, timeout=300, capture_output=True)
    if tree_files:
        say(f"idle on a tree of {tree_files:,} files")
        report["idle"] = {"inotify": idle_cost(root, False, tree_files, say, idle_seconds),
                          "polling": idle_cost(root, True, tree_files, say, idle_seconds)}
    return report


def render(report: dict[str, Any]) -> str:
    single, many = report["singles"], report["burst"]
    lines = [
        "| measure | figure | target |", "|---|---|---|",
        f"| copy -> own top hit, one photo at a time ({single['photos']}) | p50 {single['p50_s']:.2f} s, "
        f"p99 {single['p99_s']:.2f} s (max {single['max_s']:.2f}) | p50 <= 3 s, p99 <= 10 s |",
        f"| {many['photos']:,} photos copied at once -> all counted | {many['searchable_seconds']:.1f} s "
        f"({many['top_hit_found']}/{many['top_hit_checked']} sampled are their own top hit) | "
        f"<= {many['target_seconds']:.1f} s ({many['photos']:,} / {many['index_images_per_second']:.1f} "
        f"images/s + 10 s) |",
    ]
    for mode, idle in report.get("idle", {}).items():
        lines.append(f"| idle, {mode}, {idle['files']:,} files in {idle['folders']:,} folders | "
                     f"CPU {idle['cpu_percent']:.2f}% of a core, RSS {idle['rss_mb']:.0f} MB | - |")
    return "\n".join(lines)
