"""Locust users for `imgsearch` load runs: mixed search / similar / thumbnail traffic.

Configured by the environment (set by benchmarks/load.py):
  IMGSEARCH_LOAD_COLLECTION  the collection to query
  IMGSEARCH_LOAD_IDS         a file of indexed image ids, one per line
  IMGSEARCH_LOAD_QUERIES     a folder of JPEGs to upload as queries
Any response other than 2xx, and any connection error, counts as a failure.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

from locust import HttpUser, between, task

COLLECTION = os.environ.get("IMGSEARCH_LOAD_COLLECTION", "milvus_img_search")
IDS = [line.strip() for line in Path(os.environ["IMGSEARCH_LOAD_IDS"]).read_text().split() if line.strip()]
QUERIES = [path.read_bytes() for path in sorted(Path(os.environ["IMGSEARCH_LOAD_QUERIES"]).glob("*.jpg"))]


class SearchUser(HttpUser):
    wait_time = between(0.0, 0.2)  # a browser user clicking around, not a closed loop at full speed

    @task(3)
    def search(self) -> None:
        self.client.post("/api/search", params={"collection": COLLECTION, "top_k": 12},
                         files={"image": ("query.jpg", random.choice(QUERIES), "image/jpeg")},
                         name="/api/search")

    @task(3)
    def similar(self) -> None:
        self.client.get(f"/api/images/{random.choice(IDS)}/similar",
                        params={"collection": COLLECTION, "top_k": 12}, name="/api/images/{id}/similar")

    @task(4)
    def thumbnail(self) -> None:
        self.client.get(f"/api/images/{random.choice(IDS)}/thumbnail",
                        params={"collection": COLLECTION}, name="/api/images/{id}/thumbnail")
