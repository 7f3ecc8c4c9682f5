"""Drive the three engine workers: warm-up, interleaved rounds, quality embeddings.

Each engine lives in its own process for the whole run; rounds rotate the order
(ST, fp32, int8 / fp32, int8, ST / ...) so slow drift of a shared machine does not
always land on the same engine. Only one worker computes at any moment.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from umr.bench.client import WorkerProcess
from umr.bench.engines import ENGINES


@dataclass(frozen=True)
class RoundPlan:
    """How much to measure per engine."""

    rounds: int
    latency_reps: int
    warmup_docs: int
    warmup_queries: int
    batch_size: int = 32


def log(msg: str) -> None:
    """A progress line on stderr."""
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def _start(bundle: str, threads: int, max_len: int, texts: Path, work: Path) -> dict:
    workers: dict[str, WorkerProcess] = {}
    args = ["--bundle", bundle, "--threads", str(threads), "--max-seq-length", str(max_len)]
    args += ["--texts", str(texts), "--work", str(work)]
    try:
        for name in ENGINES:
            log(f"starting worker {name}")
            workers[name] = WorkerProcess(name, args)
    except BaseException:
        for w in workers.values():
            w.kill()
        raise
    return workers


def _one_round(workers: dict, order: list[str], plan: RoundPlan, last: bool, out: dict) -> None:
    for name in order:
        w = workers[name]
        save = f"corpus_{name}" if last else None
        t = w.request("embed", set="corpus", batch_size=plan.batch_size, save=save)
        lat = w.request("latency", reps=plan.latency_reps)
        out[name]["throughput_s"].append(t["seconds"])
        out[name]["latency_s"].extend(lat["samples_s"])
        log(f"  {name}: corpus {t['n'] / t['seconds']:.1f} docs/s")


def _quality(workers: dict, plan: RoundPlan, with_extra: bool) -> None:
    for name, w in workers.items():
        for text_set in ("passages", "queries"):
            w.request("embed", set=text_set, batch_size=plan.batch_size, save=f"{text_set}_{name}")
    if with_extra:
        log("embedding extra docstrings with fp32 (index base)")
        workers["fp32"].request("embed", set="extra", batch_size=plan.batch_size, save="extra_fp32")


def run_engines(
    bundle: str,
    threads: int,
    max_len: int,
    texts: Path,
    work: Path,
    plan: RoundPlan,
    extra: bool,
    after_round: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """All engine measurements; vectors land in ``work`` as ``<set>_<engine>.npy``.

    ``after_round`` runs between rounds while every worker is idle (the driver
    samples the matmul peak there, so peak and engines see similar machine load).
    """
    workers = _start(bundle, threads, max_len, texts, work)
    out: dict[str, Any] = {n: {"throughput_s": [], "latency_s": []} for n in ENGINES}
    try:
        for name, w in workers.items():
            out[name]["ready"] = w.ready
            w.request("warmup", n_docs=plan.warmup_docs, n_queries=plan.warmup_queries)
        order = list(ENGINES)
        for r in range(plan.rounds):
            log(f"round {r + 1}/{plan.rounds}: {', '.join(order)}")
            _one_round(workers, order, plan, r == plan.rounds - 1, out)
            order = order[1:] + order[:1]
            if after_round is not None:
                after_round()
        log("embedding the quality set")
        _quality(workers, plan, extra)
        for name, w in workers.items():
            out[name]["maxrss_mb"] = w.close()["maxrss_mb"]
    finally:
        for w in workers.values():
            w.kill()
    return out
