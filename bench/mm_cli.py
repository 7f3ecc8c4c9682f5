"""``umr bench image`` and ``umr bench fused``: the bundle (ONNX Runtime) vs the PyTorch model.

Also runnable as ``python -m umr.bench.mm_cli image|fused --bundle B``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from umr.bench.client import WorkerProcess
from umr.bench.engine_rounds import log
from umr.bench.mm_data import MMData, bench_data
from umr.bench.mm_engines import VARIANTS

KINDS = ("image", "fused")
_WHAT = {"image": "images", "fused": "text+image pairs"}
_INPUTS = {
    "image": "emoji images (64x64 RGBA PNGs)",
    "fused": "the (qi,qt)->ci queries, each an emoji image plus a text saying\nhow to change "
    "it, with their task instruction",
}
DESCRIPTION = """\
Benchmark embedding {what} on this machine, in one run.

Engines (same inputs, same preprocessing code, same thread count), each in its own worker
process so torch never enters umr and peak RSS is per engine:
  torch  the trained PyTorch model: umr.training.checkpoint.load_checkpoint(CHECKPOINT),
         eval mode, fp32, LoRA merged as in the bundle, torch threads = --threads
  fp32   umr Embedder on the bundle's fp32 graphs (ONNX Runtime, --threads threads)
  int8   the same on the int8 graphs (when the bundle has them)
Engines are interleaved over --rounds rounds; medians and ratios to PyTorch are reported.

Measured:
  throughput  inputs/s embedding --items inputs (batch 32), each engine through its
              public call (paths in, vectors out: decoding and resizing included)
  latency     batch-1 p50/p95/p99 over the same inputs
  parity      min/mean cosine of each umr variant to PyTorch on the throughput inputs{e2e}
Inputs: {inputs}.
They come from the emoji test split in --data (`umr data emoji`), or are synthetic
images when it is missing (the report says which).
Writes bench_{kind}.json, bench_{kind}.md and bench_{kind}.png to --out; progress goes to
stderr; the last stdout line is one JSON object with the headline numbers.
Targets: {targets}."""
_E2E = """
  end to end  batch-1 fused query = embed the pair + search a umr HNSW index of the
              emoji test images (--index-size), p50/p95/p99, and the hit rate@10 of the
              query's target image"""
_TARGETS = {
    "image": "fp32 image throughput >= 2x PyTorch",
    "fused": "fp32 batch-1 fused query p50 <= 10 ms; end-to-end fused\nquery p99 <= 20 ms",
}
_QUICK = {"items": 64, "rounds": 1, "latency_reps": 30, "e2e_reps": 60, "index_size": 500}
# Sized so a run takes about a minute on 2 busy cores (PyTorch dominates it).
_FULL = {"items": 128, "rounds": 3, "latency_reps": 50, "e2e_reps": 300, "index_size": 2000}


def configure_parser(p: argparse.ArgumentParser, kind: str) -> None:
    """Add the ``bench image`` or ``bench fused`` options to ``p``."""
    p.description = DESCRIPTION.format(
        what=_WHAT[kind],
        inputs=_INPUTS[kind],
        e2e=_E2E if kind == "fused" else "",
        kind=kind,
        targets=_TARGETS[kind],
    )
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("--bundle", required=True, help="multimodal bundle directory (umr.json)")
    p.add_argument("--out", default="artifacts/bench", help="output directory")
    p.add_argument("--threads", type=int, default=2, help="threads per engine (default 2)")
    p.add_argument("--items", type=int, help="inputs for throughput (default 128)")
    p.add_argument("--rounds", type=int, help="interleaved rounds per engine (default 3)")
    p.add_argument("--latency-reps", type=int, help="batch-1 calls per round (default 50)")
    if kind == "fused":
        p.add_argument("--e2e-reps", type=int, help="end-to-end queries (default 300)")
        p.add_argument("--index-size", type=int, help="images in the index (default 2000)")
    p.add_argument(
        "--variants",
        default=None,
        help="umr variants (default: fp32 and int8 if the bundle has it)",
    )
    p.add_argument("--checkpoint", default="default", help="PyTorch checkpoint (default)")
    p.add_argument("--data", default="artifacts/data/emoji", help="emoji data set directory")
    p.add_argument("--quick", action="store_true", help="smoke settings (64 items, 1 round)")
    p.set_defaults(bench_kind=kind)


def resolve_config(args: argparse.Namespace) -> dict[str, Any]:
    """Explicit options win; otherwise quick or full defaults. SystemExit on bad values."""
    base = _QUICK if args.quick else _FULL
    if args.bench_kind == "image":  # no end-to-end query, no index
        base = {k: v for k, v in base.items() if k not in ("e2e_reps", "index_size")}
    cfg = {k: getattr(args, k, None) for k in base}
    cfg = {k: base[k] if v is None else v for k, v in cfg.items()}
    for key, value in [*cfg.items(), ("threads", args.threads)]:
        if value <= 0:
            raise SystemExit(f"--{key.replace('_', '-')} must be positive, got {value}")
    variants = [v.strip() for v in (args.variants or "fp32,int8").split(",") if v.strip()]
    if not variants or any(v not in VARIANTS for v in variants):
        raise SystemExit(f"--variants: expected some of fp32, int8; got {args.variants!r}")
    return {
        **cfg,
        "kind": args.bench_kind,
        "threads": args.threads,
        "variants": variants,
        "variants_asked": args.variants is not None,
        "checkpoint": args.checkpoint,
        "quick": bool(args.quick),
        "batch_size": 32,
    }


class MultimodalWorker(WorkerProcess):
    """One ``python -m umr.bench.mm_worker`` child (the protocol of :class:`WorkerProcess`)."""

    def __init__(self, engine: str, args: list[str]) -> None:
        self.engine = engine
        cmd = [sys.executable, "-m", "umr.bench.mm_worker", "--engine", engine, *args]
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        self.ready = self._read()


def _start(engines: list[str], args: list[str]) -> dict[str, MultimodalWorker]:
    workers: dict[str, MultimodalWorker] = {}
    try:
        for name in engines:
            log(f"starting worker {name}")
            workers[name] = MultimodalWorker(name, args)
    except BaseException:
        for w in workers.values():
            w.kill()
        raise
    return workers


def _rounds(workers: dict[str, MultimodalWorker], cfg: dict, out: dict) -> None:
    kind, order = cfg["kind"], list(workers)
    for r in range(cfg["rounds"]):
        log(f"round {r + 1}/{cfg['rounds']}: {', '.join(order)}")
        for name in order:
            w = workers[name]
            save = f"{kind}_{name}" if r == cfg["rounds"] - 1 else None
            t = w.request("throughput", kind=kind, batch_size=cfg["batch_size"], save=save)
            lat = w.request("latency", kind=kind, reps=cfg["latency_reps"])
            out[name]["throughput_s"].append(t["seconds"])
            out[name]["latency_s"].extend(lat["samples_s"])
            log(f"  {name}: {t['n'] / t['seconds']:.1f} {kind} inputs/s")
        order = order[1:] + order[:1]


def measure(bundle: Path, cfg: dict[str, Any], data: MMData, work: Path) -> dict[str, Any]:
    """Every measurement of one run: per engine rounds, then (fused) the end-to-end query;
    also the load average before and after (on a shared machine it explains outliers)."""
    engines = ["torch", *cfg["variants"]]
    args = ["--bundle", str(bundle), "--threads", str(cfg["threads"])]
    args += ["--checkpoint", cfg["checkpoint"], "--data", str(work / "data.json")]
    args += ["--work", str(work)]
    load_before = os.getloadavg()
    workers = _start(engines, args)
    out: dict[str, Any] = {n: {"throughput_s": [], "latency_s": []} for n in engines}
    try:
        for name, w in workers.items():
            out[name]["ready"] = w.ready
            w.request("warmup", kind=cfg["kind"], n=min(32, cfg["items"]))
        _rounds(workers, cfg, out)
        if cfg["kind"] == "fused":
            for name in cfg["variants"]:
                log(f"end to end: {name} embeds {len(data.candidates)} images into the index")
                built = workers[name].request("build_index", threads=cfg["threads"])
                e2e = workers[name].request("e2e", reps=cfg["e2e_reps"])
                out[name]["e2e"] = {**e2e, "index": built}
        for name, w in workers.items():
            out[name]["maxrss_mb"] = w.close()["maxrss_mb"]
    finally:
        for w in workers.values():
            w.kill()
    return {"engines": out, "load_avg": {"before": load_before, "after": os.getloadavg()}}


def run(args: argparse.Namespace) -> int:
    """Run the benchmark; write outputs; print the headline JSON as the last stdout line."""
    from umr.bench.machine import machine_info
    from umr.bench.mm_report import assemble, headline, write

    from umr.bundle import read_manifest

    cfg = resolve_config(args)
    bundle, out = Path(args.bundle), Path(args.out)
    manifest = read_manifest(bundle)
    if getattr(manifest, "image", None) is None:
        raise SystemExit(f"{bundle}: bundle {manifest.name!r} has no image graph; export one")
    missing = [v for v in cfg["variants"] if v not in manifest.variants]
    if missing and cfg["variants_asked"]:
        raise SystemExit(f"--variants: bundle {manifest.name!r} has no {', '.join(missing)}")
    cfg["variants"] = [v for v in cfg["variants"] if v in manifest.variants]
    with tempfile.TemporaryDirectory(prefix="umr-bench-mm-") as tmp:
        work = Path(tmp)
        data_dir = Path(args.data) if args.data else None
        data = bench_data(data_dir, work, cfg["items"], cfg.get("index_size", 0))
        data.save(work / "data.json")
        log(f"{cfg['kind']}: {data.source} inputs, {cfg['items']} items, {cfg['threads']} threads")
        raw = measure(bundle, cfg, data, work)
        report = assemble(raw, cfg, data, manifest, machine_info(cfg["threads"]), work)
    write(report, out)
    log(f"wrote {out}/bench_{cfg['kind']}.json, .md, .png")
    print(json.dumps(headline(report)))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m umr.bench.mm_cli image|fused ...`` entry point."""
    p = argparse.ArgumentParser(prog="umr bench")
    sub = p.add_subparsers(dest="bench_command", required=True)
    for kind in KINDS:
        configure_parser(sub.add_parser(kind), kind)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
