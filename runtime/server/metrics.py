"""Prometheus metrics and the access log, observed by one ASGI middleware.

Each app gets its own registry (tests build many apps in one process). Endpoint labels
come from a fixed list of paths, never the raw path, so a scan of random URLs cannot
grow the label set. The access log carries method, path, status and latency only;
request bodies are logged (truncated) only when ``log_requests`` is on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .batching import BatchStats

log = logging.getLogger("umr.server.access")
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
_LOGGED_BODY_BYTES = 2048
_METHODS = frozenset({"GET", "POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS"})


class Metrics:
    """The server's metrics; :meth:`render` gives the Prometheus text format."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        labels = ["endpoint", "method", "status"]
        self.requests = Counter("umr_http_requests", "HTTP requests answered.", labels, registry=r)
        self.errors = Counter(
            "umr_http_errors", "HTTP requests answered with status >= 400.", labels, registry=r
        )
        self.latency = Histogram(
            "umr_http_request_duration_seconds",
            "Time from request start to the end of the response.",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_items = Histogram(
            "umr_batch_items", "Inputs per model call.", ["kind"], buckets=_SIZE_BUCKETS, registry=r
        )
        self.batch_requests = Histogram(
            "umr_batch_requests",
            "Request parts sharing one model call.",
            ["kind"],
            buckets=_SIZE_BUCKETS,
            registry=r,
        )
        self.batch_tokens = Counter(
            "umr_batch_tokens", "Text tokens embedded.", ["kind"], registry=r
        )
        self.batch_pixels = Counter(
            "umr_batch_pixels", "Image pixels decoded and embedded.", ["kind"], registry=r
        )
        self.batch_wait = Histogram(
            "umr_batch_queue_seconds",
            "Time the oldest request part of a batch waited before its model call.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_run = Histogram(
            "umr_batch_run_seconds", "Duration of one model call.", buckets=_LATENCY_BUCKETS,
            registry=r,
        )  # fmt: skip
        self.batch_failures = Counter(
            "umr_batch_failures", "Model calls that raised.", ["kind"], registry=r
        )

    def gauge(self, name: str, doc: str, read: Callable[[], float]) -> None:
        """A gauge read at scrape time (queue depth, index size)."""
        Gauge(name, doc, registry=self.registry).set_function(read)

    def observe_batch(self, stats: BatchStats) -> None:
        """Record one model call (the batcher's ``on_batch`` callback)."""
        kind = str(stats.key[0]) if isinstance(stats.key, tuple) else str(stats.key)
        self.batch_items.labels(kind).observe(stats.items)
        self.batch_requests.labels(kind).observe(stats.jobs)
        self.batch_tokens.labels(kind).inc(stats.tokens)
        if stats.pixels:
            self.batch_pixels.labels(kind).inc(stats.pixels)
        self.batch_wait.observe(stats.wait_s)
        self.batch_run.observe(stats.run_s)
        if stats.failed:
            self.batch_failures.labels(kind).inc()

    def render(self) -> bytes:
        """All metrics in the Prometheus text exposition format."""
        return generate_latest(self.registry)


class ObserveRequests:
    """ASGI middleware: counts, times and logs every HTTP request."""

    def __init__(
        self, app: ASGIApp, metrics: Metrics, endpoints: Iterable[str], log_requests: bool
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.endpoints = frozenset(endpoints)
        self.log_requests = log_requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # if the app raises before starting a response, the client gets a 500
        body = bytearray()

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        async def receive_logged() -> Message:
            message = await receive()
            if message["type"] == "http.request" and len(body) < _LOGGED_BODY_BYTES:
                body.extend(message.get("body", b"")[: _LOGGED_BODY_BYTES - len(body)])
            return message

        try:
            await self.app(scope, receive_logged if self.log_requests else receive, send_observed)
        finally:
            self._record(scope, status, time.perf_counter() - start, bytes(body))

    def _record(self, scope: Scope, status: int, seconds: float, body: bytes) -> None:
        path = scope.get("path", "")
        endpoint = path if path in self.endpoints else "other"
        method = scope.get("method", "")
        method = method if method in _METHODS else "other"  # clients choose methods freely
        m = self.metrics
        m.requests.labels(endpoint, method, str(status)).inc()
        if status >= 400:
            m.errors.labels(endpoint, method, str(status)).inc()
        m.latency.labels(endpoint).observe(seconds)
        if self.log_requests:
            text = body.decode("utf-8", "replace")
            log.info("%s %s %d %.1f ms body=%r", method, path, status, seconds * 1e3, text)
        else:
            log.info("%s %s %d %.1f ms", method, endpoint, status, seconds * 1e3)
