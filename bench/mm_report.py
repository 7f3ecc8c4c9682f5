"""``umr bench image|fused`` results: medians, ratios to PyTorch, parity, targets, and the
JSON, Markdown and PNG outputs. Every verdict is computed from the run's own numbers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from umr.bench.machine import machine_line
from umr.bench.quality import cosine_drift
from umr.bench.report_md import targets_table
from umr.bench.stats import latency_summary, median, ratio
from umr.bench.targets import Target, report_value

from umr.atomic import atomic_write_bytes, atomic_write_json

MIN_IMAGE_X_TORCH = 2.0
MAX_FUSED_P50_MS = 10.0
MAX_E2E_P99_MS = 20.0
_LABELS = {"torch": "PyTorch (reference)", "fp32": "umr fp32", "int8": "umr int8"}


def _engine(raw: dict[str, Any], n_items: int) -> dict[str, Any]:
    t_med = median(raw["throughput_s"])
    entry = {
        "implementation": raw["ready"]["implementation"],
        "load_s": raw["ready"]["load_s"],
        "torch_loaded": raw["ready"]["torch_loaded"],
        "throughput": {
            "seconds_rounds": raw["throughput_s"],
            "items_per_s_rounds": [n_items / t for t in raw["throughput_s"]],
            "seconds_median": t_med,
            "items_per_s": n_items / t_med,
            "items_per_s_best": n_items / min(raw["throughput_s"]),
        },
        "latency": latency_summary(raw["latency_s"]),
        "maxrss_mb": raw.get("maxrss_mb"),
    }
    if "e2e" in raw:
        e = raw["e2e"]
        entry["e2e"] = {
            **latency_summary(e["samples_s"]),
            "hit_rate_at_k": e["hit_rate"],
            "k": e["k"],
            "index": e["index"],
        }
    return entry


def _parity(work: Path, kind: str, variants: list[str]) -> dict[str, Any]:
    ref = np.load(work / f"{kind}_torch.npy")
    return {v: cosine_drift(np.load(work / f"{kind}_{v}.npy"), ref) for v in variants}


def assemble(
    raw: dict[str, Any],
    cfg: dict[str, Any],
    data: Any,
    manifest: Any,
    machine: dict[str, Any],
    work: Path,
) -> dict[str, Any]:
    """The JSON-ready report of one run."""
    kind = cfg["kind"]
    n_items = len(data.images if kind == "image" else data.pairs)
    engines = {name: _engine(e, n_items) for name, e in raw["engines"].items()}
    torch = engines["torch"]
    for e in engines.values():
        t = e["throughput"]
        t["x_torch"] = ratio(t["items_per_s"], torch["throughput"]["items_per_s"])
        # hard on umr: its median against PyTorch's fastest round (a busy machine slows
        # some rounds of either engine; this ratio is the one contention cannot inflate)
        t["x_torch_best_round"] = ratio(t["items_per_s"], torch["throughput"]["items_per_s_best"])
        e["latency"]["p50_x_torch"] = ratio(torch["latency"]["p50_ms"], e["latency"]["p50_ms"])
    report = {
        "schema": f"umr.bench.{kind}/1",
        "kind": kind,
        "config": cfg,
        "bundle": {
            "name": manifest.name,
            "dim": manifest.dim,
            "variants": sorted(manifest.variants),
            "modalities": list(getattr(manifest, "modalities", ["text"])),
        },
        "machine": {**machine, "load_avg": raw.get("load_avg")},
        "data": {
            "source": data.source,
            "n_items": n_items,
            "n_candidates": len(data.candidates) if kind == "fused" else None,
            "instruction": data.instruction if kind == "fused" else None,
        },
        "engines": engines,
        "parity_to_torch": _parity(work, kind, [n for n in engines if n != "torch"]),
    }
    report["targets"] = [t.to_json() for t in evaluate_targets(report)]
    report["headline"] = headline(report)
    return report


def evaluate_targets(report: dict[str, Any]) -> list[Target]:
    """The issue's targets for this kind, for each umr variant measured."""
    out = []
    for v in (name for name in report["engines"] if name != "torch"):
        g = lambda *p, v=v: report_value(report, "engines", v, *p)  # noqa: E731 - a local shorthand
        if report["kind"] == "image":
            x = g("throughput", "x_torch")
            out.append(Target(f"{v} image throughput vs PyTorch (x)", x, ">=", MIN_IMAGE_X_TORCH))
            continue
        p50, p99 = g("latency", "p50_ms"), g("e2e", "p99_ms")
        out.append(Target(f"{v} batch-1 fused query p50 (ms)", p50, "<=", MAX_FUSED_P50_MS))
        out.append(Target(f"{v} end-to-end fused query p99 (ms)", p99, "<=", MAX_E2E_P99_MS))
    return out


def headline(report: dict[str, Any]) -> dict[str, Any]:
    """The numbers a reader wants first, one flat dict."""
    kind, e = report["kind"], report["engines"]
    out: dict[str, Any] = {"kind": kind, "data": report["data"]["source"]}
    for name, entry in e.items():
        out[f"{name}_{kind}_per_s"] = entry["throughput"]["items_per_s"]
        out[f"{name}_p50_ms"] = entry["latency"]["p50_ms"]
        if name != "torch":
            out[f"{name}_x_torch"] = entry["throughput"]["x_torch"]
            out[f"{name}_x_torch_best_round"] = entry["throughput"]["x_torch_best_round"]
            out[f"{name}_min_cos_to_torch"] = report["parity_to_torch"][name]["min"]
        if "e2e" in entry:
            out[f"{name}_e2e_p50_ms"] = entry["e2e"]["p50_ms"]
            out[f"{name}_e2e_p99_ms"] = entry["e2e"]["p99_ms"]
            out[f"{name}_e2e_hit_rate"] = entry["e2e"]["hit_rate_at_k"]
    met = [t.met for t in evaluate_targets(report)]
    out["targets_met"] = f"{sum(m is True for m in met)}/{len(met)}"
    return out


def _f(value: float | None, fmt: str = ".1f") -> str:
    return "n/a" if value is None else format(value, fmt)


def engine_table(report: dict[str, Any]) -> str:
    """engine | inputs/s | x PyTorch | batch-1 p50/p95/p99 | p50 x PyTorch | cos | RSS."""
    parity = report["parity_to_torch"]
    rows = [
        "| engine | inputs/s (rounds) | x PyTorch | x PyTorch's best round "
        "| batch-1 p50/p95/p99 ms | batch-1 speed-up | min cos to PyTorch | peak RSS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, e in report["engines"].items():
        t, lat = e["throughput"], e["latency"]
        cos = "reference" if name == "torch" else _f(parity[name]["min"], ".6f")
        spread = ", ".join(f"{x:.0f}" for x in t["items_per_s_rounds"])
        rows.append(
            f"| {_LABELS.get(name, name)} | {_f(t['items_per_s'])} ({spread}) "
            f"| {_f(t['x_torch'], '.2f')} | {_f(t['x_torch_best_round'], '.2f')} "
            f"| {_f(lat['p50_ms'], '.2f')} / {_f(lat['p95_ms'], '.2f')} / "
            f"{_f(lat['p99_ms'], '.2f')} | {_f(lat['p50_x_torch'], '.2f')}x | {cos} "
            f"| {_f(e['maxrss_mb'], '.0f')} |"
        )
    return "\n".join(rows)


def _setup_line(report: dict[str, Any]) -> str:
    c, d = report["config"], report["data"]
    what = "images" if report["kind"] == "image" else "text+image pairs"
    source = "emoji test split" if d["source"] == "emoji" else "synthetic images (no emoji data)"
    instr = f', instruction "{d["instruction"]}"' if d.get("instruction") else ""
    return (
        f"{d['n_items']} {what} from the {source}{instr}; batch {c['batch_size']} for "
        f"throughput, {c['threads']} threads per engine, median of {c['rounds']} interleaved "
        f"rounds; batch-1 latency over {c['latency_reps'] * c['rounds']} calls. Every engine "
        "is called with file paths and decodes and resizes with the same code (umr.images)."
    )


def _e2e_lines(report: dict[str, Any]) -> list[str]:
    out = []
    source = report["data"]["source"]
    for name, e in report["engines"].items():
        if "e2e" not in e:
            continue
        x = e["e2e"]
        hits = x["hit_rate_at_k"]
        found = (
            ""
            if hits is None
            else (f"; the target image in the top {x['k']} for {hits:.3f} of them")
        )
        out.append(
            f"End to end ({_LABELS.get(name, name)}): batch-1 fused query embedded and searched "
            f"in a umr HNSW index of {x['index']['n']} {source} images, {x['n']} queries: p50 "
            f"{x['p50_ms']:.2f} ms, p95 {x['p95_ms']:.2f} ms, p99 {x['p99_ms']:.2f} ms{found}."
        )
    return out


def markdown(report: dict[str, Any]) -> str:
    """The whole bench_<kind>.md."""
    title = "Image" if report["kind"] == "image" else "Text+image (fused)"
    impl = "; ".join(
        f"{_LABELS.get(n, n)}: {e['implementation']}" for n, e in report["engines"].items()
    )
    parts = [
        f"# {title} embedding benchmark: {report['bundle']['name']}",
        engine_table(report),
        _setup_line(report),
        *_e2e_lines(report),
        f"Engines: {impl}.",
        "## Targets",
        targets_table(evaluate_targets(report)),
        f"Machine: {machine_line(report['machine'])}.{_load_line(report['machine'])}",
    ]
    return "\n\n".join(parts) + "\n"


def _load_line(machine: dict[str, Any]) -> str:
    load = machine.get("load_avg")
    if not load:
        return ""
    show = lambda xs: "/".join(f"{x:.1f}" for x in xs)  # noqa: E731 - a local shorthand
    # The 1-minute load before the run is the one figure the run itself did not raise.
    busy = load["before"][0] >= 0.5
    verdict = (
        "other work was using the CPU when the run started"
        if busy
        else "the machine was otherwise idle when the run started"
    )
    return (
        f" Load average (1/5/15 min) {show(load['before'])} before the run, "
        f"{show(load['after'])} after, on {machine.get('usable_cores') or machine.get('cores')} "
        f"cores: {verdict}."
    )


def write(report: dict[str, Any], out: Path) -> None:
    """bench_<kind>.json, .md and .png in ``out``."""
    from umr.bench.mm_plot import write_plot

    kind = report["kind"]
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / f"bench_{kind}.json", json.loads(json.dumps(report)))
    atomic_write_bytes(out / f"bench_{kind}.md", markdown(report).encode("utf-8"))
    write_plot(report, out / f"bench_{kind}.png")
