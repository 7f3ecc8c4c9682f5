"""Index benchmark: umr HNSW vs ExactIndex (recall), vs raw hnswlib and NumPy brute force
(QPS), and end-to-end query latency (embed one query + search).

Runs inside ``python -m umr.bench.worker index --spec FILE`` (a umr process: no torch).
The spec is JSON written by the driver; the result is one JSON line on stdout.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from umr.bench.stats import latency_summary, median, ratio
from umr.bench.synthetic import clustered, perturbed
from umr.bench.texts import BenchTexts
from umr.bench.worker import peak_rss_mb

K = 10


def _log(msg: str) -> None:
    print(f"[bench:index] {msg}", file=sys.stderr, flush=True)


def brute_force(data: np.ndarray, queries: np.ndarray, k: int = K, block: int = 256) -> np.ndarray:
    """Exact top-``k`` row numbers: normalized matmul + argpartition, in query blocks."""
    out = np.empty((queries.shape[0], k), dtype=np.int64)
    for s in range(0, queries.shape[0], block):
        scores = queries[s : s + block] @ data.T
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.take_along_axis(scores, part, axis=1).argsort(axis=1)[:, ::-1]
        out[s : s + block] = np.take_along_axis(part, order, axis=1)
    return out


def _ids(hits: list[list[Any]]) -> np.ndarray:
    return np.array([[h.id for h in row] for row in hits], dtype=np.int64)


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of the true top-k found (rows of ids; order ignored)."""
    shared = [len(set(f) & set(t)) for f, t in zip(found.tolist(), truth.tolist(), strict=True)]
    return float(np.mean(shared) / truth.shape[1])


def _loop_qps(search_one: Callable[[np.ndarray], object], queries: np.ndarray) -> float:
    t0 = time.perf_counter()
    for q in queries:
        search_one(q[None, :])
    return queries.shape[0] / (time.perf_counter() - t0)


def _batch_qps(search_all: Callable[[np.ndarray], object], queries: np.ndarray) -> float:
    t0 = time.perf_counter()
    search_all(queries)
    return queries.shape[0] / (time.perf_counter() - t0)


def build_indexes(data: np.ndarray, threads: int, m: int, efc: int) -> dict[str, Any]:
    """Build umr Index, umr ExactIndex and raw hnswlib over ``data`` (ids = row numbers)."""
    import hnswlib
    from umr.runtime.index import ExactIndex, Index

    ids = list(range(data.shape[0]))
    t0 = time.perf_counter()
    umr_index = Index.create(
        data.shape[1], space="cosine", M=m, ef_construction=efc, num_threads=threads
    )
    umr_index.add(data, ids)
    t_umr = time.perf_counter() - t0
    _log(f"umr Index built in {t_umr:.1f}s (ef={umr_index.ef})")
    t0 = time.perf_counter()
    raw = hnswlib.Index(space="cosine", dim=data.shape[1])
    raw.init_index(max_elements=data.shape[0], M=m, ef_construction=efc)
    raw.add_items(data, np.arange(data.shape[0]), num_threads=threads)
    raw.set_ef(umr_index.ef)
    t_raw = time.perf_counter() - t0
    _log(f"raw hnswlib built in {t_raw:.1f}s")
    exact = ExactIndex.create(data.shape[1], space="cosine", num_threads=threads)
    exact.add(data, ids)
    return {
        "umr": umr_index,
        "raw": raw,
        # The hnswlib object inside umr's Index: the same graph, so QPS against it is the
        # wrapper's own cost. Two separate builds differ (threaded inserts), and that
        # difference alone moves QPS and recall by several percent either way.
        "raw_same": umr_index._hnsw,
        "exact": exact,
        "build_s": {"umr": t_umr, "hnswlib": t_raw},
    }


def measure_qps(idx: dict[str, Any], data: np.ndarray, queries: np.ndarray, spec: dict) -> dict:
    """Batch-1 loop and batched QPS, interleaved over rounds; medians per engine."""
    n_brute = min(spec["brute_loop_queries"], queries.shape[0])
    threads = spec["threads"]
    runs: dict[str, list[float]] = {}
    measures: list[tuple[str, Callable[[], float]]] = [
        ("umr_loop", lambda: _loop_qps(lambda q: idx["umr"].search(q, k=K), queries)),
        ("hnswlib_loop", lambda: _loop_qps(lambda q: idx["raw"].knn_query(q, k=K), queries)),
        ("same_loop", lambda: _loop_qps(lambda q: idx["raw_same"].knn_query(q, k=K), queries)),
        ("brute_loop", lambda: _loop_qps(lambda q: brute_force(data, q), queries[:n_brute])),
        ("umr_batch", lambda: _batch_qps(lambda q: idx["umr"].search(q, k=K), queries)),
        (
            "hnswlib_batch",
            lambda: _batch_qps(
                lambda q: idx["raw"].knn_query(q, k=K, num_threads=threads), queries
            ),
        ),
        ("same_batch", lambda: _batch_qps(lambda q: idx["raw_same"].knn_query(q, k=K), queries)),
        ("brute_batch", lambda: _batch_qps(lambda q: brute_force(data, q), queries)),
    ]
    for round_no in range(spec["rounds"]):
        # Alternate the order: whoever runs first in a round meets colder caches.
        for name, measure in measures if round_no % 2 == 0 else measures[::-1]:
            runs.setdefault(name, []).append(measure())
    qps = {name: median(values) for name, values in runs.items()}
    return {
        "qps": qps,
        "qps_rounds": runs,
        "umr_vs_hnswlib_loop": ratio(qps["umr_loop"], qps["same_loop"]),
        "umr_vs_hnswlib_batch": ratio(qps["umr_batch"], qps["same_batch"]),
        "umr_vs_own_build_loop": ratio(qps["umr_loop"], qps["hnswlib_loop"]),
        "umr_vs_own_build_batch": ratio(qps["umr_batch"], qps["hnswlib_batch"]),
        "umr_vs_brute_loop": ratio(qps["umr_loop"], qps["brute_loop"]),
        "umr_vs_brute_batch": ratio(qps["umr_batch"], qps["brute_batch"]),
    }


def end_to_end(index: Any, spec: dict, texts: BenchTexts) -> dict[str, Any]:
    """Latency of embedding one short query (fp32 and int8) plus searching the index."""
    from umr.runtime import Embedder

    out = {}
    for variant in ("fp32", "int8"):
        emb = Embedder.load(
            spec["bundle"], variant=variant, provider="cpu", threads=spec["threads"]
        )
        queries = texts.short_queries
        for q in queries[:20]:
            index.search(emb.embed_text([q], batch_size=1), k=K)
        samples = []
        for i in range(spec["e2e_reps"]):
            t0 = time.perf_counter()
            index.search(emb.embed_text([queries[i % len(queries)]], batch_size=1), k=K)
            samples.append(time.perf_counter() - t0)
        out[variant] = latency_summary(samples)
    return out


def _blas_info() -> list[dict[str, Any]]:
    from threadpoolctl import threadpool_info

    keys = ("internal_api", "version", "architecture", "num_threads")
    return [{k: d.get(k) for k in keys} for d in threadpool_info() if d.get("user_api") == "blas"]


def run_index_bench(spec: dict[str, Any]) -> dict[str, Any]:
    """The whole index benchmark for one spec; returns the JSON-ready result."""
    work = Path(spec["work"])
    real = np.concatenate([np.load(work / f"{name}.npy") for name in spec["real_sets"]])
    data = clustered(real, spec["size"], spec["sigma"], seed=spec["seed"])
    n_synth = spec["n_query_perturbed"]
    queries = np.concatenate(
        [
            np.load(work / "queries_fp32.npy"),
            perturbed(data[: real.shape[0]], n_synth, spec["sigma"], seed=spec["seed"] + 1),
        ]
    ).astype(np.float32)
    _log(f"{data.shape[0]} vectors ({real.shape[0]} real), {queries.shape[0]} queries")
    idx = build_indexes(data, spec["threads"], spec["M"], spec["ef_construction"])
    truth = _ids(idx["exact"].search(queries, k=K))
    hnsw = _ids(idx["umr"].search(queries, k=K))
    result = {
        "size": int(data.shape[0]),
        "n_real": int(real.shape[0]),
        "n_queries": int(queries.shape[0]),
        "recipe": {"sigma": spec["sigma"], "seed": spec["seed"], "real_sets": spec["real_sets"]},
        "M": spec["M"],
        "ef_construction": spec["ef_construction"],
        "ef": int(idx["umr"].ef),
        "build_s": idx["build_s"],
        "recall_at_10": recall_at_k(hnsw, truth),
        "hnswlib_recall_at_10": recall_at_k(idx["raw"].knn_query(queries, k=K)[0], truth),
        "exact_vs_numpy_agreement": recall_at_k(brute_force(data, queries), truth),
        "brute_loop_queries": min(spec["brute_loop_queries"], queries.shape[0]),
        "blas": _blas_info(),
    }
    _log(f"recall@10 {result['recall_at_10']:.4f}; measuring QPS")
    result.update(measure_qps(idx, data, queries, spec))
    _log("end-to-end latency")
    result["e2e"] = end_to_end(idx["umr"], spec, BenchTexts.load(spec["texts"]))
    result["maxrss_mb"] = peak_rss_mb()
    return result


def run_from_spec(path: str) -> int:
    """Read a spec file, run, print the result as one JSON line."""
    spec = json.loads(Path(path).read_text(encoding="utf-8"))
    print(json.dumps(run_index_bench(spec)))
    return 0
