"""Prometheus metrics: requests and latency by route, search latency, collection sizes."""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 2, 5, 10)


class Metrics:
    """One registry per app, so several apps in one process (tests) do not collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("imgsearch_http_requests_total", "HTTP requests",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("imgsearch_http_request_seconds", "HTTP request latency",
                                 ["method", "route"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.search = Histogram("imgsearch_search_seconds", "Search latency: decode, encode, Milvus, catalog",
                                buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch_size = Histogram("imgsearch_query_batch_size", "Queries per forward pass",
                                    buckets=(1, 2, 4, 8, 16, 32), registry=self.registry)
        self.collection_images = Gauge("imgsearch_collection_images", "Indexed images per collection",
                                       ["collection"], registry=self.registry)

    def render(self, collection_counts: Callable[[], dict[str, int]]) -> tuple[bytes, str]:
        try:
            counts = collection_counts()
        except Exception:  # noqa: BLE001 - metrics must render while a backend is down
            counts = {}
        self.collection_images.clear()
        for name, count in counts.items():
            self.collection_images.labels(name).set(count)
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "GET")
            self.metrics.requests.labels(method, template, str(status)).inc()
            self.metrics.latency.labels(method, template).observe(time.perf_counter() - started)
