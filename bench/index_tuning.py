"""Choose the default ``ef`` of :class:`umr.runtime.index.Index`: recall@10 and QPS per ef.

Data: ``n`` unit vectors in ``dim`` dims from ``clusters`` gaussian clusters. Centres are
uniform on the sphere; a point is ``centre + spread * g / sqrt(dim)`` (g standard
normal), renormalized, so its noise has norm about ``spread`` next to a unit centre.
The default spread 2.0 gives cosine ~0.45 between a point and its centre, ~0.2 between
two points of one cluster and ~0 across clusters: a query's 10 neighbours are a noisy,
non-trivial pick among ~100 weakly similar candidates (spread 1.0, cosine ~0.5 within
a cluster, is markedly easier). Queries are fresh draws from the same distribution.

Result on this machine (n=100k, dim 384, 1000 clusters, M=16, ef_construction=200):
recall@10 at ef 48/64/96 = 0.978/0.987/0.993 (spread 2.0) and 0.999/1.000/1.000
(spread 1.0), hence ``DEFAULT_EF = 64``.

Compares, on the same graph and the same queries, one thread each: the wrapper
(``Index.search``), raw ``hnswlib.Index.knn_query`` and brute force (``ExactIndex``),
both as one batched call and as one call per query (the server's pattern). Medians of
``--repeats`` runs; ends with one JSON line.

    python -m umr.bench.index_tuning --n 100000
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits
from umr.runtime.index import ExactIndex, Index


def clustered(n: int, dim: int, clusters: int, spread: float, seed: int) -> np.ndarray:
    """``n`` unit vectors from gaussian clusters around random unit centres."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    noise = rng.standard_normal((n, dim)).astype(np.float32) * (spread / np.sqrt(dim))
    x = centres[rng.integers(0, clusters, n)] + noise
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def recall(found: list[list[Any]], truth: list[list[Any]]) -> float:
    """Mean fraction of each true top-k that was found."""
    pairs = zip(found, truth, strict=True)
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in pairs]))


CLOCK: Callable[[], float] = time.thread_time


def qps(fn: Callable[[], object], n_queries: int, repeats: int) -> float:
    """Queries per second: median over ``repeats`` timed runs after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        start = CLOCK()
        fn()
        times.append(CLOCK() - start)
    return n_queries / statistics.median(times)


def paired_qps(
    wrapped: Callable[[np.ndarray], object],
    raw: Callable[[np.ndarray], object],
    q: np.ndarray,
    repeats: int,
    block: int = 50,
) -> tuple[float, float]:
    """QPS of ``wrapped`` and ``raw``: full passes over the queries in alternation, each
    block of ``block`` queries timed alone; QPS from the median block time of each.

    Full passes (not the same block twice in a row) keep one side from finding the
    other's graph nodes in cache. Blocks are timed by ``CLOCK`` (this thread's CPU time
    by default: everything runs on the calling thread, and time the scheduler gives
    other processes on this shared machine is not counted), medians shrug off the rest.
    """
    times: tuple[list[float], list[float]] = ([], [])
    blocks = [q[i : i + block] for i in range(0, len(q) - block + 1, block)]
    for fn in (wrapped, raw):  # warm-up pass each
        for b in blocks:
            fn(b)
    for rep in range(repeats):
        order = ((0, wrapped), (1, raw)) if rep % 2 == 0 else ((1, raw), (0, wrapped))
        for slot, fn in order:
            for b in blocks:
                start = CLOCK()
                fn(b)
                times[slot].append(CLOCK() - start)
    return block / statistics.median(times[0]), block / statistics.median(times[1])


def one_by_one(search: Callable[[np.ndarray], object]) -> Callable[[np.ndarray], None]:
    """A callable that runs ``search`` once per query row (the server's pattern)."""

    def run(q: np.ndarray) -> None:
        for row in q:
            search(row)

    return run


def measure_ef(index: Index, q: np.ndarray, truth: list[list[Any]], ef: int, repeats: int) -> dict:
    """Recall and QPS of wrapper vs raw hnswlib at one ef."""
    index.ef = ef
    raw = index._hnsw  # the same graph, so only the wrapper's overhead differs
    hits = index.search(q, k=10)
    row: dict[str, Any] = {"ef": ef, "recall@10": recall([[h.id for h in r] for r in hits], truth)}
    row["qps_batch"], row["qps_batch_raw"] = paired_qps(
        lambda b: index.search(b, k=10), lambda b: raw.knn_query(b, k=10), q, repeats
    )
    row["qps_single"], row["qps_single_raw"] = paired_qps(
        one_by_one(lambda v: index.search(v, k=10)),
        one_by_one(lambda v: raw.knn_query(v, k=10)),
        q,
        repeats,
    )
    for mode in ("batch", "single"):
        row[f"ratio_{mode}"] = row[f"qps_{mode}"] / row[f"qps_{mode}_raw"]
    return row


def build_or_load(args: argparse.Namespace, x: np.ndarray, ids: list[int]) -> tuple[Index, dict]:
    """Build the index (timed) and save it under ``--cache``; reuse a cached one if present.

    Either way the index searched is one loaded from disk, so load time is measured too.
    """
    key = f"n{args.n}-d{args.dim}-c{args.clusters}-s{args.spread}-M16-efc200"
    path = Path(args.cache) / key
    timings: dict[str, float] = {}
    if not (path / "manifest.json").exists():
        start = time.perf_counter()
        index = Index.create(args.dim, "cosine", M=16, ef_construction=200, capacity=args.n,
                             num_threads=args.build_threads)  # fmt: skip
        index.add(x, ids)
        timings["build_s"] = time.perf_counter() - start
        start = time.perf_counter()
        index.save(path)
        timings["save_s"] = time.perf_counter() - start
    start = time.perf_counter()
    index = Index.load(path)  # verifies sha256 + the hnswlib header before hnswlib reads it
    timings["load_s"] = time.perf_counter() - start
    return index, timings


def main(argv: list[str] | None = None) -> dict:
    """Run the sweep, print a table and a final JSON line; return the JSON object."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--clusters", type=int, default=1000)
    ap.add_argument("--spread", type=float, default=2.0)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--efs", default="16,24,32,48,64,96,128")
    ap.add_argument("--build-threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument(
        "--clock",
        choices=("cpu", "wall"),
        default="cpu",
        help="time queries by this thread's CPU time (default) or wall time",
    )
    ap.add_argument("--cache", default="/tmp/umr-index-tuning", help="where built indexes are kept")
    args = ap.parse_args(argv)
    global CLOCK
    CLOCK = time.thread_time if args.clock == "cpu" else time.perf_counter

    data = clustered(args.n + args.queries, args.dim, args.clusters, args.spread, seed=0)
    x, q = data[: args.n], data[args.n :]
    ids = list(range(args.n))
    index, timings = build_or_load(args, x, ids)
    index._hnsw.set_num_threads(1)  # queries on one core, for wrapper and raw alike

    exact = ExactIndex.create(args.dim, "cosine", capacity=args.n)
    exact.add(x, ids)
    truth = [[h.id for h in r] for r in exact.search(q, k=10)]
    with threadpool_limits(1):  # one core, like the hnswlib queries
        brute_batch = qps(lambda: exact.search(q, k=10), len(q), max(1, args.repeats // 2))
        few = q[:100]
        brute_single = qps(lambda: one_by_one(lambda v: exact.search(v, k=10))(few), 100, 1)

    rows = [measure_ef(index, q, truth, int(ef), args.repeats) for ef in args.efs.split(",")]
    print(
        f"n={args.n} dim={args.dim} clusters={args.clusters} spread={args.spread} "
        f"{timings}; brute force qps batch {brute_batch:.0f} single {brute_single:.0f}"
    )
    print("   ef  recall@10  qps_batch (raw)   ratio  qps_single (raw)  ratio  x_brute b/s")
    for r in rows:
        print(
            f"{r['ef']:5d}  {r['recall@10']:.4f}  {r['qps_batch']:8.0f} ({r['qps_batch_raw']:6.0f})"
            f"  {r['ratio_batch']:.3f}  {r['qps_single']:7.0f} ({r['qps_single_raw']:6.0f})"
            f"  {r['ratio_single']:.3f}  {r['qps_batch'] / brute_batch:5.1f}"
            f" {r['qps_single'] / brute_single:5.1f}"
        )
    result = {
        "bench": "index_tuning",
        "n": args.n,
        "dim": args.dim,
        "clusters": args.clusters,
        "spread": args.spread,
        "queries": args.queries,
        "M": 16,
        "ef_construction": 200,
        "clock": args.clock,
        **timings,
        "brute_qps_batch": brute_batch,
        "brute_qps_single": brute_single,
        "rows": rows,
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
