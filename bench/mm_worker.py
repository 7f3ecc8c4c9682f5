"""Measurement worker for ``umr bench image|fused``: one engine in its own process.

``python -m umr.bench.mm_worker --engine torch|fp32|int8 --bundle B --threads T --data FILE
--work DIR`` loads one engine, prints ``{"ready": ...}`` and answers one JSON command per
stdin line with one JSON line on stdout (the protocol of :mod:`umr.bench.worker`), so
torch never enters a umr process and each engine's peak RSS is its own.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from umr.bench.mm_data import MMData
from umr.bench.mm_engines import ENGINES
from umr.bench.worker import _serve, peak_rss_mb

KINDS = ("image", "fused")


class MultimodalServer:
    """Answers the driver's commands for one loaded engine."""

    def __init__(self, engine: Any, data: MMData, work: Path) -> None:
        self.engine, self.data, self.work = engine, data, work
        self.index: Any = None

    def _embed(self, kind: str, rows: slice, batch_size: int) -> np.ndarray:
        d = self.data
        if kind == "image":
            return self.engine.image(d.images[rows], batch_size)
        texts, paths = (list(x) for x in zip(*d.pairs[rows], strict=True))
        return self.engine.fused(texts, paths, d.instruction, batch_size)

    def warmup(self, kind: str, n: int) -> dict[str, Any]:
        """A batch and a few single items, so lazy initialisation is not timed."""
        t0 = time.perf_counter()
        self._embed(kind, slice(0, n), 32)
        for i in range(min(n, 10)):
            self._embed(kind, slice(i, i + 1), 1)
        return {"seconds": time.perf_counter() - t0}

    def throughput(self, kind: str, batch_size: int, save: str | None = None) -> dict[str, Any]:
        """Embed every item of ``kind`` once, timed; optionally save the vectors."""
        n = len(self.data.images if kind == "image" else self.data.pairs)
        t0 = time.perf_counter()
        vectors = self._embed(kind, slice(0, n), batch_size)
        seconds = time.perf_counter() - t0
        if save:
            np.save(self.work / f"{save}.npy", np.ascontiguousarray(vectors, dtype=np.float32))
        return {"seconds": seconds, "n": n, "dim": int(vectors.shape[1])}

    def latency(self, kind: str, reps: int) -> dict[str, Any]:
        """Batch-1 samples (seconds), cycling through the items."""
        n = len(self.data.images if kind == "image" else self.data.pairs)
        samples = []
        for k in range(reps):
            t0 = time.perf_counter()
            self._embed(kind, slice(k % n, k % n + 1), 1)
            samples.append(time.perf_counter() - t0)
        return {"samples_s": samples}

    def build_index(self, threads: int) -> dict[str, Any]:
        """The candidates' image vectors in a umr HNSW index (the searched collection)."""
        from umr.runtime import Index

        t0 = time.perf_counter()
        vectors = self.engine.image(self.data.candidates, 32)
        embed_s = time.perf_counter() - t0
        self.index = Index.create(vectors.shape[1], num_threads=threads)
        self.index.add(vectors, list(range(len(vectors))))
        return {"n": len(vectors), "embed_s": embed_s, "total_s": time.perf_counter() - t0}

    def e2e(self, reps: int, k: int = 10) -> dict[str, Any]:
        """Batch-1 fused queries: embed the pair, search the index; samples and hit rate."""
        d, samples, hits = self.data, [], 0
        for r in range(reps):
            i = r % len(d.pairs)
            t0 = time.perf_counter()
            vector = self.engine.fused([d.pairs[i][0]], [d.pairs[i][1]], d.instruction, 1)
            found = self.index.search(vector, k=k)[0]
            samples.append(time.perf_counter() - t0)
            hits += d.positives[i] in {h.id for h in found}
        scored = [p for p in (d.positives[r % len(d.pairs)] for r in range(reps)) if p >= 0]
        return {"samples_s": samples, "hit_rate": hits / len(scored) if scored else None, "k": k}

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        """Dispatch one command (``warmup``, ``throughput``, ``latency``, ``build_index``,
        ``e2e``, ``quit``)."""
        cmd = request.pop("cmd", None)
        if cmd == "quit":
            return {"maxrss_mb": peak_rss_mb()}
        handlers = {
            "warmup": self.warmup,
            "throughput": self.throughput,
            "latency": self.latency,
            "build_index": self.build_index,
            "e2e": self.e2e,
        }
        handler = handlers.get(cmd)  # type: ignore[arg-type]
        if handler is None:
            return {"error": f"unknown command {cmd!r}"}
        return handler(**request)


def main(argv: list[str] | None = None) -> int:
    """Load the engine, announce readiness, serve commands until ``quit``."""
    from umr.bench.mm_engines import make_engine

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--engine", required=True, choices=ENGINES)
    p.add_argument("--bundle", required=True)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--checkpoint", default="default")
    p.add_argument("--data", required=True)
    p.add_argument("--work", required=True)
    args = p.parse_args(argv)
    channel, sys.stdout = sys.stdout, sys.stderr  # the protocol owns the real stdout
    rss0 = peak_rss_mb()
    t0 = time.perf_counter()
    engine = make_engine(args.engine, args.bundle, args.threads, args.checkpoint)
    ready = {
        "ready": True,
        "engine": args.engine,
        "load_s": time.perf_counter() - t0,
        "implementation": engine.implementation,
        "rss_before_load_mb": rss0,
        "torch_loaded": "torch" in sys.modules,
    }
    channel.write(json.dumps(ready) + "\n")
    channel.flush()
    server = MultimodalServer(engine, MMData.load(args.data), Path(args.work))
    _serve(server, sys.stdin, channel)  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
