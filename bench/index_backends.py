"""Recall@10 and QPS of every index backend against exact search, on one data set.

Data: ``n`` clustered unit vectors (the recipe of :mod:`umr.bench.index_tuning`:
gaussian clusters around random unit centres; queries are fresh draws). Each backend
gets the same vectors with the same HNSW settings (M, ef_construction, ef); the Milvus
collection is flushed (``save()``) and reloaded before searching, so every segment is
sealed and searched through its HNSW graph rather than by brute force (build_s includes
that).

QPS is wall-clock (Milvus answers through gRPC threads, so this thread's CPU time would
flatter it), median of ``--repeats`` timed runs after one warm-up, both as one batched
call and as one call per query (the server's pattern). Ends with one JSON line.

    python -m umr.bench.index_backends --n 20000 --dim 384
    python -m umr.bench.index_backends --uri http://milvus:19530   # a real server
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from umr.bench.index_tuning import clustered, recall
from umr.runtime.index import DEFAULT_EF, create_index


def timed_qps(fn: Callable[[], object], n_queries: int, repeats: int) -> float:
    """Queries per second of ``fn`` (which answers ``n_queries``): median wall time."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return n_queries / statistics.median(times)


def measure(
    index: Any, q: np.ndarray, truth: list[list[Any]] | None, repeats: int, singles: int
) -> dict[str, Any]:
    """Recall@10 (None for the reference itself) and batch / one-by-one QPS of ``index``."""
    found = [[h.id for h in row] for row in index.search(q, k=10)]
    few = q[:singles]

    def one_by_one() -> None:
        for row in few:
            index.search(row, k=10)

    return {
        "recall@10": None if truth is None else recall(found, truth),
        "qps_batch": timed_qps(lambda: index.search(q, k=10), len(q), repeats),
        "qps_single": timed_qps(one_by_one, len(few), repeats),
    }


def build(backend: str, x: np.ndarray, args: argparse.Namespace, db: Path) -> tuple[Any, float]:
    """Create ``backend``, add ``x`` under ids 0..n-1 and save/flush; returns build seconds."""
    settings: dict[str, Any] = {"M": args.M, "ef_construction": args.ef_construction}
    if backend == "milvus":
        settings.update(uri=args.uri or str(db), collection=args.collection, overwrite=True)
    else:
        settings.update(capacity=len(x))
    start = time.perf_counter()
    index = create_index(backend, x.shape[1], space="cosine", ef=args.ef, **settings)
    for lo in range(0, len(x), 10_000):
        index.add(x[lo : lo + 10_000], list(range(lo, min(lo + 10_000, len(x)))))
    if backend == "milvus":
        index.save()  # flush: seal the rows into segments
        # milvus-lite builds a sealed segment's HNSW graph in a background thread; until
        # then it scores that segment by brute force. Loading builds missing graphs inline.
        index._client.release_collection(index.collection)
        index._client.load_collection(index.collection)
    return index, time.perf_counter() - start


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Build every backend in ``args.backends`` and measure it against exact search."""
    data = clustered(args.n + args.queries, args.dim, args.clusters, args.spread, seed=0)
    x, q = data[: args.n].astype(np.float32), data[args.n :].astype(np.float32)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="umr-bench-") as tmp:
        exact, seconds = build("exact", x, args, Path(tmp))
        truth = [[h.id for h in row] for row in exact.search(q, k=10)]
        results["exact"] = {"build_s": seconds, **measure(exact, q, None, args.repeats, 100)}
        for backend in args.backends.split(","):
            index, seconds = build(backend, x, args, Path(tmp) / "bench.db")
            row = measure(index, q, truth, args.repeats, args.singles)
            results[backend] = {"build_s": seconds, **row}
            if backend == "milvus":
                index.drop()
                index.close()
    return {
        "bench": "index_backends",
        "n": args.n,
        "dim": args.dim,
        "clusters": args.clusters,
        "spread": args.spread,
        "queries": args.queries,
        "M": args.M,
        "ef_construction": args.ef_construction,
        "ef": args.ef,
        "clock": "wall",
        "backends": results,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Parse arguments, run, print a table and a final JSON line; return the JSON object."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--clusters", type=int, default=200, help="about n/100, as index_tuning")
    ap.add_argument("--spread", type=float, default=2.0)
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--singles", type=int, default=200, help="queries timed one per call")
    ap.add_argument("--M", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=200)
    ap.add_argument("--ef", type=int, default=DEFAULT_EF)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--backends", default="hnswlib,milvus", help="measured against exact")
    ap.add_argument("--uri", default=None, help="Milvus URI (default: a temporary milvus-lite db)")
    ap.add_argument("--collection", default="umr_bench")
    result = run(ap.parse_args(argv))
    print(f"n={result['n']} dim={result['dim']} M={result['M']} ef={result['ef']}")
    print("backend    recall@10  qps_batch qps_single  build_s")
    for name, row in result["backends"].items():
        rec = "-" if row["recall@10"] is None else f"{row['recall@10']:.4f}"
        print(
            f"{name:10s} {rec:>9s} {row['qps_batch']:10.0f} {row['qps_single']:10.0f}"
            f" {row['build_s']:8.1f}"
        )
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
