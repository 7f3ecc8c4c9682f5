"""``umr bench serve``: HTTP throughput and latency under concurrent clients, micro-batching
on and off, side by side with offline batch throughput and batch-1 latency.

Also runnable as ``python -m umr.bench.serve_cli --bundle B``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from umr.bench.serve_bench import ServeBenchConfig

DESCRIPTION = """\
Benchmark `umr serve` on this machine, in one run.

For each workload (real texts shipped with Python: short reference headings, and
reference passages), measures:
  offline   Embedder.embed_text on all texts in one call (texts/s), and batch-1
            latency (one text per call), before and after the server runs
  ceiling   the model alone on the texts in arrival order, in batches of
            clients / batch workers, as many at once as the server runs
  batcher   the server's micro-batcher and model, --clients in-process clients,
            no HTTP
  server    `umr serve` in a child process on 127.0.0.1 with a temp index, driven by
            --clients closed-loop clients sending one text per POST /v1/embeddings,
            for --duration seconds or --requests requests per mode, with
            micro-batching on and then off. The clients are wrk (a C load
            generator; `apt install wrk`) when it is installed, else Python
            threads, which take about a core of their own: on a small machine
            that is CPU the server does not get (--load-client)
Reports requests/s, share of offline throughput, p50/p99 latency, errors, requests
per model call and the server's CPU time per request (its event loop's thread and
the others; Linux), and checks the targets (>= 80% of offline throughput and p99 <= 3x
batch-1 p50 with batching on, 0 errors). Writes bench_serve.json and bench_serve.md to
--out; the last stdout line is one JSON object with the headline numbers."""


def configure_parser(p: argparse.ArgumentParser) -> None:
    """Add the ``bench serve`` options to ``p``."""
    p.description = DESCRIPTION
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("--bundle", required=True, help="exported bundle directory (umr.json)")
    p.add_argument("--out", default="artifacts/bench/serve", help="output directory")
    p.add_argument("--clients", type=int, default=16, help="concurrent clients (default 16)")
    p.add_argument("--duration", type=float, default=20.0, help="seconds per mode (default 20)")
    p.add_argument("--requests", type=int, default=1_000_000, help="max requests per mode")
    p.add_argument(
        "--workloads",
        default="queries,passages",
        help="comma-separated: queries, passages (default both)",
    )
    p.add_argument("--texts", type=int, default=512, help="distinct texts per workload (512)")
    p.add_argument("--threads", type=int, default=None, help="server/embedder threads (cores)")
    p.add_argument("--batch-wait-ms", type=float, default=2.0, help="server batch wait (2 ms)")
    p.add_argument(
        "--load-client",
        choices=("auto", "python", "wrk"),
        default="auto",
        help="who sends the requests: wrk (time-bounded; --requests does not apply), Python "
        "threads, or auto: wrk when it is on PATH (default)",
    )


def config_from_args(args: argparse.Namespace) -> ServeBenchConfig:
    """The :class:`ServeBenchConfig` for ``args``; SystemExit on a bad value."""
    from umr.bench.serve_bench import WORKLOADS, ServeBenchConfig
    from umr.bench.serve_wrk import find_wrk

    workloads = tuple(w.strip() for w in args.workloads.split(",") if w.strip())
    unknown = [w for w in workloads if w not in WORKLOADS]
    if unknown or not workloads:
        raise SystemExit(f"--workloads: unknown {unknown}; expected some of {sorted(WORKLOADS)}")
    for name in ("clients", "requests", "texts"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name} must be positive, got {getattr(args, name)}")
    if not args.duration > 0:
        raise SystemExit(f"--duration must be positive, got {args.duration}")
    client = args.load_client
    if client != "python":
        have_wrk = find_wrk() is not None
        if client == "wrk" and not have_wrk:
            raise SystemExit("--load-client wrk: wrk is not on PATH (Debian: apt install wrk)")
        client = "wrk" if have_wrk else "python"  # "auto" resolved: the report names who ran
    return ServeBenchConfig(
        bundle=Path(args.bundle),
        workloads=workloads,
        clients=args.clients,
        duration_s=args.duration,
        max_requests=args.requests,
        texts=args.texts,
        threads=args.threads,
        batch_wait_ms=args.batch_wait_ms,
        load_client=client,
    )


def run(args: argparse.Namespace) -> int:
    """Run the benchmark; write outputs; print the headline JSON as the last stdout line."""
    from dataclasses import asdict

    from umr.bench.machine import machine_info
    from umr.bench.serve_bench import log, run_benchmark
    from umr.bench.serve_report import assemble, headline, write

    cfg = config_from_args(args)
    raw = run_benchmark(cfg)
    settings = {**asdict(cfg), "bundle": str(cfg.bundle)}
    report = assemble(raw, settings, machine_info(raw["embedder"]["threads"]))
    out = Path(args.out)
    write(report, out)
    log(f"wrote {out}/bench_serve.json and bench_serve.md")
    print(json.dumps(headline(report)))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m umr.bench.serve_cli`` entry point."""
    p = argparse.ArgumentParser(prog="umr bench serve")
    configure_parser(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
