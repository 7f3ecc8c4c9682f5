"""Measurement worker: one engine (or the index benchmark) in its own process.

``python -m umr.bench.worker engine --engine st|fp32|int8 --bundle B --threads T
--texts FILE --work DIR`` loads one engine, prints ``{"ready": ...}`` and then answers
one JSON command per stdin line with one JSON line on stdout. Keeping one process
per engine alive across rounds lets the driver interleave engines while each
process's peak RSS stays its own, and keeps torch out of every umr process.

``python -m umr.bench.worker index --spec FILE`` runs :mod:`umr.bench.index_bench`.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from umr.bench.texts import BenchTexts


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class EngineServer:
    """Answers the driver's commands for one loaded engine."""

    def __init__(self, engine: Any, texts: BenchTexts, work: Path):
        self.engine, self.texts, self.work = engine, texts, work

    def warmup(self, n_docs: int, n_queries: int) -> dict[str, Any]:
        """Run a few batches and single queries so lazy init is not timed."""
        t0 = time.perf_counter()
        self.engine.embed(self.texts.corpus[:n_docs], 32)
        for q in self.texts.short_queries[:n_queries]:
            self.engine.embed([q], 1)
        return {"seconds": time.perf_counter() - t0}

    def embed(self, set: str, batch_size: int, save: str | None = None) -> dict[str, Any]:
        """Embed one named text set once, timed; optionally save the vectors as .npy."""
        texts = self.texts.named(set)
        t0 = time.perf_counter()
        vectors = self.engine.embed(texts, batch_size)
        seconds = time.perf_counter() - t0
        if save:
            np.save(self.work / f"{save}.npy", np.ascontiguousarray(vectors, dtype=np.float32))
        return {"seconds": seconds, "n": len(texts), "dim": int(vectors.shape[1])}

    def latency(self, reps: int) -> dict[str, Any]:
        """Batch-1 latency samples (seconds), cycling through the short queries."""
        queries = self.texts.short_queries
        samples = []
        for k in range(reps):
            q = [queries[k % len(queries)]]
            t0 = time.perf_counter()
            self.engine.embed(q, 1)
            samples.append(time.perf_counter() - t0)
        return {"samples_s": samples}

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        """Dispatch one command (``warmup``, ``embed``, ``latency``, ``quit``)."""
        cmd = request.pop("cmd", None)
        if cmd == "quit":
            return {"maxrss_mb": peak_rss_mb()}
        handler = {"warmup": self.warmup, "embed": self.embed, "latency": self.latency}.get(cmd)
        if handler is None:
            return {"error": f"unknown command {cmd!r}"}
        return handler(**request)


def _serve(server: EngineServer, inp: TextIO, out: TextIO) -> None:
    for line in inp:
        request = json.loads(line)
        quitting = request.get("cmd") == "quit"
        try:
            reply = server.handle(request)
        except Exception as exc:  # report to the driver instead of dying silently
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        out.write(json.dumps(reply) + "\n")
        out.flush()
        if quitting:
            return


def run_engine(args: argparse.Namespace) -> int:
    """Load the engine, announce readiness, serve commands until ``quit``."""
    from umr.bench.engines import make_engine

    # The protocol owns the real stdout; library chatter goes to stderr.
    channel, sys.stdout = sys.stdout, sys.stderr
    rss0 = peak_rss_mb()
    t0 = time.perf_counter()
    engine = make_engine(args.engine, args.bundle, args.threads, args.max_seq_length)
    ready = {
        "ready": True,
        "engine": args.engine,
        "load_s": time.perf_counter() - t0,
        "implementation": getattr(engine, "implementation", ""),
        "rss_before_load_mb": rss0,
        "torch_loaded": "torch" in sys.modules,
    }
    channel.write(json.dumps(ready) + "\n")
    channel.flush()
    _serve(EngineServer(engine, BenchTexts.load(args.texts), Path(args.work)), sys.stdin, channel)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m umr.bench.worker``."""
    p = argparse.ArgumentParser(description=__doc__)
    sub = p.add_subparsers(dest="mode", required=True)
    e = sub.add_parser("engine", help="serve one engine's measurements over stdin/stdout")
    e.add_argument("--engine", required=True, choices=("st", "fp32", "int8"))
    e.add_argument("--bundle", required=True)
    e.add_argument("--threads", type=int, default=2)
    e.add_argument("--max-seq-length", type=int, default=256)
    e.add_argument("--texts", required=True)
    e.add_argument("--work", required=True)
    i = sub.add_parser("index", help="run the index benchmark described by a spec file")
    i.add_argument("--spec", required=True)
    args = p.parse_args(argv)
    if args.mode == "engine":
        return run_engine(args)
    from umr.bench.index_bench import run_from_spec

    return run_from_spec(args.spec)


if __name__ == "__main__":
    raise SystemExit(main())
