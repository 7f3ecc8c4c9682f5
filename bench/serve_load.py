"""Closed-loop HTTP load: N client threads, each sending its next request as soon as the
previous one is answered, until a time or request budget runs out.

Clients use ``http.client`` with one keep-alive connection each and pre-encoded bodies:
on a small machine the load generator shares the cores with the server, and a heavier
client library would measure itself. A request counts as an error unless it gets a 200
whose body starts like an embeddings response.
"""

from __future__ import annotations

import http.client
import itertools
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from umr.bench.stats import latency_summary

_OK_PREFIX = b'{"object":"list"'


@dataclass
class LoadResult:
    """What one load run saw. ``latencies_s`` holds successful requests only; a load
    generator that reports percentiles instead (wrk) fills ``latency``."""

    requests: int = 0
    errors: int = 0
    error_kinds: Counter = field(default_factory=Counter)
    latencies_s: list[float] = field(default_factory=list)
    duration_s: float = 0.0
    latency: dict[str, float] | None = None

    def latency_ms(self) -> dict[str, float] | None:
        """p50/p95/p99/mean ms and ``n`` over successful requests; ``None`` if none."""
        if self.latency is not None:
            return self.latency
        return latency_summary(self.latencies_s) if self.latencies_s else None

    def merge(self, other: LoadResult) -> None:
        """Add another client's counts (the duration is the run's, set by the caller)."""
        self.requests += other.requests
        self.errors += other.errors
        self.error_kinds.update(other.error_kinds)
        self.latencies_s.extend(other.latencies_s)


def run_load(
    url: str,
    bodies: Sequence[bytes],
    *,
    clients: int,
    duration_s: float,
    max_requests: int,
    path: str = "/v1/embeddings",
    timeout_s: float = 30.0,
) -> LoadResult:
    """Send ``bodies`` round-robin from ``clients`` threads; stop at ``duration_s`` seconds
    or ``max_requests`` requests, whichever comes first."""
    if clients < 1 or max_requests < 1 or duration_s <= 0 or not bodies:
        raise ValueError("clients, max_requests and duration_s must be positive; bodies non-empty")
    tickets = itertools.count()  # next() on a count is atomic in CPython
    deadline = time.perf_counter() + duration_s
    parts = [LoadResult() for _ in range(clients)]
    target = urlsplit(url)

    def client(result: LoadResult) -> None:
        conn = http.client.HTTPConnection(target.hostname, target.port, timeout=timeout_s)
        try:
            while time.perf_counter() < deadline:
                n = next(tickets)
                if n >= max_requests:
                    return
                _one(conn, path, bodies[n % len(bodies)], result)
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(p,), daemon=True) for p in parts]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = LoadResult(duration_s=time.perf_counter() - start)
    for part in parts:
        total.merge(part)
    return total


def _one(conn: http.client.HTTPConnection, path: str, body: bytes, result: LoadResult) -> None:
    headers = {"Content-Type": "application/json"}
    start = time.perf_counter()
    try:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
    except (OSError, http.client.HTTPException) as exc:
        conn.close()  # reconnects on the next request
        result.requests += 1
        result.errors += 1
        result.error_kinds[type(exc).__name__] += 1
        return
    elapsed = time.perf_counter() - start
    result.requests += 1
    if response.status != 200 or not data.startswith(_OK_PREFIX):
        result.errors += 1
        result.error_kinds[f"HTTP {response.status}"] += 1
        return
    result.latencies_s.append(elapsed)
