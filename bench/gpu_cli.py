"""``umr bench gpu``: options, the run, and the JSON + Markdown report."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from umr.atomic import atomic_write_bytes, atomic_write_json

DESCRIPTION = """\
A bundle on a GPU through ONNX Runtime's CUDA execution provider (IO binding; fp32 and
fp16 variants), side by side in one run with the CPU provider on the same machine: text,
image and text+image throughput, batch-1 latency (p50/p99), and the cosine of every
engine's vectors to cpu:fp32's (parity on this GPU). Then the Triton pooling kernel
against eager PyTorch pooling on the GPU (needs torch and triton).

Needs onnxruntime-gpu and an NVIDIA GPU (pip install 'umr[gpu]'); an engine whose
provider is missing fails saying what is installed. Writes bench_gpu.json and
bench_gpu.md to --out.

example:
  umr bench gpu --bundle artifacts/bundles/umr-default --engines cuda:fp32,cuda:fp16,cpu:fp32
"""


def configure_parser(p: argparse.ArgumentParser) -> None:
    """Add the ``bench gpu`` options to ``p``."""
    p.description = DESCRIPTION
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("--bundle", required=True, help="bundle directory (umr.json)")
    p.add_argument("--out", default="artifacts/bench/gpu", help="output directory")
    p.add_argument(
        "--engines",
        default="cuda:fp32,cuda:fp16,cpu:fp32",
        help="PROVIDER:VARIANT list; must include cpu:fp32 (default: %(default)s)",
    )
    p.add_argument("--items", type=int, default=256, help="inputs per throughput run")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    p.add_argument("--latency-reps", type=int, default=100, help="batch-1 calls per round")
    p.add_argument("--cpu-threads", type=int, default=0, help="CPU EP threads (0: all cores)")
    p.add_argument("--no-pooling", action="store_true", help="skip the Triton pooling part")


def run(args: argparse.Namespace) -> int:
    """Measure, print progress, write the report; 0 on success."""
    from umr.bench.gpu_bench import GpuBenchConfig, run_gpu_bench
    from umr.bench.gpu_pooling import run_pooling_on_gpu
    from umr.bench.machine import machine_info
    from umr.runtime.gpu_env import gpu_info, installed_versions
    from umr.runtime.session import usable_cores

    cfg = GpuBenchConfig(
        bundle=Path(args.bundle),
        engines=tuple(e.strip() for e in args.engines.split(",") if e.strip()),
        items=args.items,
        rounds=args.rounds,
        latency_reps=args.latency_reps,
        cpu_threads=args.cpu_threads,
    )
    gpu = gpu_info()
    report: dict[str, Any] = {
        "machine": machine_info(args.cpu_threads or usable_cores()),
        "gpu": None if gpu is None else {"name": gpu.name, "cc": gpu.compute_capability},
        "gpu_packages": installed_versions(),
        "config": {**vars(cfg), "bundle": str(cfg.bundle)},
        "embedding": run_gpu_bench(cfg),
        "pooling": {"skipped": "--no-pooling"} if args.no_pooling else run_pooling_on_gpu(),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "bench_gpu.json", json.loads(json.dumps(report, default=str)))
    text = markdown(report)
    atomic_write_bytes(out / "bench_gpu.md", text.encode("utf-8"))
    print(text)
    return 0


def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: machine, embedding table, pooling table."""
    gpu = report["gpu"]
    lines = [
        "# umr bench gpu",
        "",
        f"GPU: {gpu['name']} (compute {gpu['cc']})" if gpu else "GPU: none found",
        f"CPU: {report['machine']['cpu']}, {report['machine']['cores']} cores",
        "Packages: "
        + ", ".join(
            f"{k} {v or 'not installed'}" for k, v in sorted(report["gpu_packages"].items())
        ),
        "",
        "| engine | kind | batch | items/s | x cpu:fp32 | batch-1 p50 ms | p99 ms | "
        "min cos vs cpu:fp32 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in report["embedding"]["rows"]:
        lines.append(
            f"| {r['engine']} | {r['kind']} | {r['batch_size']} | {r['items_per_s']:.1f} | "
            f"{r['speedup_vs_cpu_fp32']:.2f} | {r['batch1']['p50_ms']:.2f} | "
            f"{r['batch1']['p99_ms']:.2f} | {r['parity_vs_cpu_fp32']['min_cosine']:.6f} |"
        )
    pooling = report["pooling"]
    lines += ["", "## Triton pooling kernel vs eager PyTorch (CUDA events, median)", ""]
    if "skipped" in pooling:
        lines.append(f"Skipped: {pooling['skipped']}")
    else:
        lines += [
            "| shape | dtype | Triton ms | eager ms | speedup | max abs diff |",
            "|---|---|---|---|---|---|",
        ]
        for r in pooling["rows"]:
            lines.append(
                f"| {'x'.join(map(str, r['shape']))} | {r['dtype']} | {r['triton_ms']:.4f} | "
                f"{r['eager_ms']:.4f} | {r['speedup']:.2f} | {r['max_abs_diff']:.2e} |"
            )
    return "\n".join(lines) + "\n"
