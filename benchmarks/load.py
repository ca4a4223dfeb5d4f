"""A bounded loopback load run with locust (headless), summarised from its CSV."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from imgsearch.errors import ImgsearchError

LOCUSTFILE = Path(__file__).with_name("locustfile.py")


class LoadError(ImgsearchError, RuntimeError):
    """locust is missing, or the run could not be made."""


def run_load(url: str, collection: str, ids: list[int], queries: Path, workdir: Path,
             users: int = 16, seconds: int = 60) -> dict[str, Any]:
    """Run `users` concurrent clients against `url` for `seconds`; per-route and
    total request counts, failures and latency percentiles (ms)."""
    locust = Path(sys.executable).with_name("locust")
    if not locust.exists():
        raise LoadError("locust is not installed: ./setup.sh --test (or pip install locust)")
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "ids.txt").write_text("\n".join(map(str, ids)))
    env = {**os.environ, "IMGSEARCH_LOAD_COLLECTION": collection,
           "IMGSEARCH_LOAD_IDS": str(workdir / "ids.txt"), "IMGSEARCH_LOAD_QUERIES": str(queries)}
    prefix = workdir / "locust"
    command = [str(locust), "-f", str(LOCUSTFILE), "--headless", "--host", url,
               "--users", str(users), "--spawn-rate", str(users), "--run-time", f"{seconds}s",
               "--stop-timeout", "30", "--csv", str(prefix), "--only-summary", "--loglevel", "WARNING"]
    # Not check=True: locust exits 1 when any request failed, and its statistics say which.
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=seconds + 120, check=False)
    stats = prefix.with_name("locust_stats.csv")
    if not stats.exists():
        raise LoadError(f"locust wrote no statistics (exit {done.returncode}): {done.stderr[-2000:]}")
    routes = {row["Name"]: _summary(row) for row in csv.DictReader(stats.open())}
    failures = prefix.with_name("locust_failures.csv")
    return {"users": users, "seconds": seconds, "routes": routes,
            "total": routes.pop("Aggregated"),
            "failures": list(csv.DictReader(failures.open())) if failures.exists() else []}


def _summary(row: dict[str, str]) -> dict[str, Any]:
    return {"requests": int(row["Request Count"]), "failures": int(row["Failure Count"]),
            "rps": round(float(row["Requests/s"]), 2), "p50_ms": float(row["50%"]),
            "p90_ms": float(row["90%"]), "p99_ms": float(row["99%"]), "max_ms": float(row["Max Response Time"])}
