"""The measurements of ``umr bench serve``: offline references and HTTP load, one run.

Per workload (a fixed set of real texts):

- offline: ``Embedder.embed_text`` on all the texts in one call (texts/s), and batch-1
  latency (one text per call), measured before and after the server runs so a busy
  moment on a shared machine shows up as a gap between the two;
- batcher: the server's micro-batcher and the model, with ``clients`` in-process
  closed-loop clients and no HTTP (:mod:`umr.bench.serve_batcher`);
- server: ``umr serve`` in a child process with micro-batching on, then off, each
  driven by ``clients`` closed-loop clients sending one text per request (Python
  threads, or wrk, which takes far less of the CPU the server shares with it).
"""

from __future__ import annotations

import itertools
import json
import math
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from umr.bench.serve_batcher import measure_batcher
from umr.bench.serve_load import LoadResult, run_load
from umr.bench.serve_server import ServerProcess, batch_stats, http_stack
from umr.bench.serve_wrk import run_wrk
from umr.bench.stats import latency_summary, median

from umr.corpus import python_reference_passages, python_reference_queries

#: Workload name -> what it is (texts come from :func:`workload_texts`).
WORKLOADS = {
    "queries": "Python language-reference headings (short queries, ~6 tokens)",
    "passages": "Python language-reference passages (<=120 words, ~150 tokens)",
}
MODES = {"batching": [], "no-batching": ["--no-batching"]}
LOAD_CLIENTS = ("python", "wrk")


@dataclass(frozen=True)
class ServeBenchConfig:
    """One run's settings."""

    bundle: Path
    workloads: tuple[str, ...] = ("queries", "passages")
    clients: int = 16
    duration_s: float = 20.0
    max_requests: int = 1_000_000
    texts: int = 512  # distinct request bodies per workload (cycled if the set is smaller)
    warmup_requests: int = 64
    batch1_reps: int = 200
    offline_reps: int = 3
    threads: int | None = None  # server and offline embedder; None: all usable cores
    batch_wait_ms: float = 2.0
    load_client: str = "python"  # "python" (serve_load) or "wrk" (serve_wrk: less client CPU)

    def __post_init__(self) -> None:
        if self.load_client not in LOAD_CLIENTS:
            raise ValueError(f"load_client {self.load_client!r}: expected one of {LOAD_CLIENTS}")


def log(message: str) -> None:
    """Progress on stderr (stdout ends with the JSON headline)."""
    print(f"[bench serve] {message}", file=sys.stderr, flush=True)


def workload_texts(name: str, n: int) -> list[str]:
    """``n`` texts of workload ``name``, cycling through the set if it is smaller."""
    if name == "queries":
        base = [q.text for q in python_reference_queries()]
    elif name == "passages":
        base = [p.text for p in python_reference_passages()]
    else:
        raise ValueError(f"unknown workload {name!r}; expected one of {sorted(WORKLOADS)}")
    return list(itertools.islice(itertools.cycle(base), n))


def concurrency_batch(clients: int, workers: int) -> int:
    """The largest batch each of ``workers`` model calls can hold, on average, when
    ``clients`` closed-loop clients have one request each in flight."""
    return max(1, math.ceil(clients / max(1, workers)))


def _throughput(embedder: Any, texts: list[str], reps: int) -> list[float]:
    runs = []
    for _ in range(reps):
        start = time.perf_counter()
        embedder.embed_text(texts)
        runs.append(time.perf_counter() - start)
    return runs


def _arrival_throughput(
    embedder: Any, texts: list[str], reps: int, batch: int, workers: int
) -> list[float]:
    """Seconds per pass over ``texts`` cut in arrival order into calls of ``batch``,
    ``workers`` calls at a time: what a server's batches are. One ``embed_text`` call
    on all texts would sort them by length first, so its batches of ``batch`` pad far
    less than batches of whatever requests happen to arrive together (~20% less work
    for short queries here)."""
    chunks = [texts[i : i + batch] for i in range(0, len(texts), batch)]
    runs = []
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for _ in range(reps):
            start = time.perf_counter()
            for _ in pool.map(embedder.embed_text, chunks):
                pass
            runs.append(time.perf_counter() - start)
    return runs


def measure_offline(
    embedder: Any, texts: list[str], reps: int, batch1_reps: int, small_batch: int, workers: int
) -> dict:
    """Throughput of one ``embed_text`` call on all texts, throughput of arrival-order
    calls of ``small_batch`` texts on ``workers`` threads (the most a server can
    gather at the benchmark's concurrency, run as its batch workers would), and
    batch-1 latency."""
    embedder.embed_text(texts[:64])  # warm-up: first calls allocate
    runs = _throughput(embedder, texts, reps)
    small = _arrival_throughput(embedder, texts, reps, small_batch, workers)
    one = []
    for text in itertools.islice(itertools.cycle(texts), batch1_reps):
        start = time.perf_counter()
        embedder.embed_text([text])
        one.append(time.perf_counter() - start)
    return {
        "texts_per_s": len(texts) / median(runs),
        "runs_s": runs,
        "small_batch": {
            "size": small_batch,
            "workers": workers,
            "order": "arrival",
            "texts_per_s": len(texts) / median(small),
        },
        "batch1": latency_summary(one),
    }


def measure_mode(cfg: ServeBenchConfig, index_dir: Path, texts: list[str], mode: str) -> dict:
    """Start the server in ``mode``, warm it up, load it, scrape its metrics."""
    extra = [*MODES[mode], "--batch-wait-ms", str(cfg.batch_wait_ms)]
    if cfg.threads is not None:
        extra += ["--threads", str(cfg.threads)]
    bodies = [json.dumps({"input": t}).encode() for t in texts]
    with ServerProcess(cfg.bundle, index_dir, extra) as server:
        warm = run_load(
            server.url,
            bodies,
            clients=cfg.clients,
            duration_s=60,
            max_requests=cfg.warmup_requests,
        )
        before = batch_stats(server.get("/metrics").decode())
        cpu_before = server.cpu_seconds()
        result = _load(cfg, server.url, bodies)
        cpu_after = server.cpu_seconds()
        after = batch_stats(server.get("/metrics").decode())
    cpu = None
    if cpu_before is not None and cpu_after is not None:
        cpu = {k: cpu_after[k] - cpu_before[k] for k in cpu_before}
    return summarize(result, warm.errors, before, after, cpu)


def _load(cfg: ServeBenchConfig, url: str, bodies: list[bytes]) -> LoadResult:
    if cfg.load_client == "wrk":  # time-bounded only: wrk knows no request budget
        return run_wrk(url, bodies, clients=cfg.clients, duration_s=cfg.duration_s)
    return run_load(
        url, bodies, clients=cfg.clients, duration_s=cfg.duration_s, max_requests=cfg.max_requests
    )


def summarize(
    result: LoadResult,
    warmup_errors: int,
    before: dict,
    after: dict,
    cpu_s: dict[str, float] | None = None,
) -> dict:
    """Requests/s, latency percentiles, batch sizes and the server's CPU time per
    request (``cpu_s``: seconds per thread group over the run) of one load run (warm-up
    excluded)."""
    latency = result.latency_ms()
    ok = int(latency["n"]) if latency else 0
    calls, parts = (after[k] - before[k] for k in ("calls", "requests"))
    cpu_ms = {k: 1e3 * v / ok for k, v in cpu_s.items()} if cpu_s and ok else None
    return {
        "requests": result.requests,
        "errors": result.errors,
        "error_kinds": dict(result.error_kinds),
        "warmup_errors": warmup_errors,
        "duration_s": result.duration_s,
        "requests_per_s": ok / result.duration_s if result.duration_s else None,
        "latency": latency,
        "model_calls": calls,
        "mean_requests_per_call": parts / calls if calls else None,
        "server_cpu_ms_per_request": cpu_ms,
    }


def run_benchmark(cfg: ServeBenchConfig) -> dict[str, Any]:
    """Every measurement of one run, per workload."""
    from umr.runtime import Embedder, ExactIndex
    from umr.runtime.server.config import BatchConfig
    from umr.runtime.server.tokens import BundleTokenCounter
    from umr.runtime.session import thread_plan

    embedder = Embedder.load(cfg.bundle, threads=cfg.threads)
    counter = BundleTokenCounter.for_bundle(cfg.bundle, embedder.manifest)
    # the server's batches run on as many workers as the embedder has (BatchConfig.workers)
    workers = thread_plan(embedder.provider, embedder.threads)[1]
    small = concurrency_batch(cfg.clients, workers)
    out: dict[str, Any] = {"workloads": {}}
    with tempfile.TemporaryDirectory(prefix="umr-bench-serve-") as tmp:
        index_dir = Path(tmp) / "index"
        ExactIndex.create(embedder.dim).save(index_dir)  # `umr serve` needs an index
        for name in cfg.workloads:
            texts = workload_texts(name, cfg.texts)
            log(f"{name}: offline references ({len(texts)} texts)")
            ref = (cfg.offline_reps, cfg.batch1_reps, small, workers)
            offline = [measure_offline(embedder, texts, *ref)]
            log(f"{name}: batcher without HTTP, {cfg.clients} clients, {cfg.duration_s:.0f} s")
            batcher = measure_batcher(
                embedder,
                texts,
                counter.count(texts),
                clients=cfg.clients,
                duration_s=cfg.duration_s,
                config=BatchConfig(max_wait_ms=cfg.batch_wait_ms, workers=workers),
            )
            modes = {}
            for mode in MODES:
                log(f"{name}: server, {mode}, {cfg.clients} clients, {cfg.duration_s:.0f} s")
                modes[mode] = measure_mode(cfg, index_dir, texts, mode)
            log(f"{name}: offline references again")
            offline.append(measure_offline(embedder, texts, *ref))
            out["workloads"][name] = {
                "description": WORKLOADS[name],
                "texts": len(texts),
                "offline_before": offline[0],
                "offline_after": offline[1],
                "batcher": batcher,
                "server": modes,
            }
    out["embedder"] = {"threads": embedder.threads, "provider": embedder.provider}
    out["server_stack"] = http_stack()
    return out
