"""Search in the process that loaded the folder: `imgsearch serve` on a new data folder, the
folder loaded over HTTP (`POST /api/index`, as the web page does), then `/api/search` at one client.

Milvus Lite keeps what a run wrote in its memtable, which it searches row by row, until it seals
it; (e) and (i) search a server started after the index process closed, so they never see it.

    .venv/bin/python -m benchmarks.search_after_load FOLDER [--requests 60]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from benchmarks.end_to_end import search_latency, serving

DONE = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def load_then_search(folder: Path, requests: int) -> dict[str, object]:
    import httpx

    with tempfile.TemporaryDirectory(prefix="search-after-load-") as data:
        env = {**os.environ, "DATA_DIR": data, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
        with serving(env, 300) as (url, _):
            started = time.perf_counter()
            run = httpx.post(f"{url}/api/index", json={"path": str(folder)}, timeout=60).json()
            while (status := httpx.get(url + run["status_url"], timeout=30).json())["state"] not in DONE:
                time.sleep(0.5)
            loaded = time.perf_counter() - started
            query = next(p for p in sorted(folder.rglob("*")) if p.suffix.lower() in (".jpg", ".jpeg"))
            search = search_latency(url, query.read_bytes(), requests, 1)
    return {"state": status["state"], "load_seconds": round(loaded, 1), "search": search}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--requests", type=int, default=60)
    arguments = parser.parse_args()
    print(json.dumps(load_then_search(arguments.folder.resolve(), arguments.requests), indent=1))


if __name__ == "__main__":
    main()
