"""``umr bench serve`` results: derived figures, targets (met or missed), JSON and Markdown.

Every verdict is computed from the run's own numbers. The references are chosen to be
hard on the server: the *faster* of the two offline throughput runs, and the *lower* of
the two batch-1 medians.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from umr.bench.machine import machine_line
from umr.bench.stats import ratio
from umr.bench.targets import Target

from umr.atomic import atomic_write_bytes, atomic_write_json

MIN_THROUGHPUT_SHARE = 0.8  # of offline batch throughput, with batching on
MAX_P99_OVER_BATCH1 = 3.0


def derive(workload: dict[str, Any], clients: int) -> dict[str, Any]:
    """Reference numbers and per-mode ratios for one workload."""
    runs = (workload["offline_before"], workload["offline_after"])
    offline = max(r["texts_per_s"] for r in runs)
    batch1 = min(r["batch1"]["p50_ms"] for r in runs)
    # The model alone in batches no bigger than the clients can fill: a ceiling for the
    # server that no HTTP stack can lift (older reports lack it).
    small = [r["small_batch"] for r in runs if "small_batch" in r]
    ceiling = max((b["texts_per_s"] for b in small), default=None)
    batcher = workload.get("batcher")  # older reports lack it
    modes = {}
    for mode, m in workload["server"].items():
        p99 = m["latency"]["p99_ms"] if m["latency"] else None
        modes[mode] = {
            "share_of_offline": ratio(m["requests_per_s"], offline),
            "share_of_ceiling": ratio(m["requests_per_s"], ceiling),
            "p99_over_batch1": ratio(p99, batch1),
        }
    return {
        "offline_texts_per_s": offline,
        "small_batch_size": small[0]["size"] if small else None,
        "small_batch_workers": small[0].get("workers") if small else None,
        "ceiling_texts_per_s": ceiling,
        "ceiling_share_of_offline": ratio(ceiling, offline),
        "batcher_texts_per_s": batcher["texts_per_s"] if batcher else None,
        "batcher_share_of_offline": ratio(batcher["texts_per_s"], offline) if batcher else None,
        "batch1_p50_ms": batch1,
        # Little's law: at this concurrency even a server at full offline throughput
        # cannot have a mean latency below clients / throughput.
        "latency_floor_ms": 1e3 * clients / offline,
        "modes": modes,
    }


def targets(name: str, workload: dict[str, Any], derived: dict[str, Any]) -> list[Target]:
    """The issue's targets for one workload (checked on the batching mode)."""
    on = derived["modes"]["batching"]
    errors = sum(m["errors"] + m["warmup_errors"] for m in workload["server"].values())
    return [
        Target(
            f"{name}: throughput / offline batch",
            on["share_of_offline"],
            ">=",
            MIN_THROUGHPUT_SHARE,
        ),
        Target(f"{name}: p99 / batch-1 p50", on["p99_over_batch1"], "<=", MAX_P99_OVER_BATCH1),
        Target(f"{name}: errors (both modes)", float(errors), "<=", 0.0),
    ]


def assemble(raw: dict[str, Any], settings: dict[str, Any], machine: dict[str, Any]) -> dict:
    """The full report: settings, machine, raw measurements, derived figures, targets."""
    derived = {n: derive(w, settings["clients"]) for n, w in raw["workloads"].items()}
    checks = [t for n, w in raw["workloads"].items() for t in targets(n, w, derived[n])]
    return {
        "settings": settings,
        "machine": machine,
        "embedder": raw["embedder"],
        "server_stack": raw.get("server_stack"),
        "workloads": raw["workloads"],
        "derived": derived,
        "targets": [t.to_json() for t in checks],
    }


_CLIENTS = {"python": "Python threads, http.client", "wrk": "wrk, one thread"}


def _stack(stack: dict[str, str] | None) -> str:
    return f" (uvicorn with {stack['http']} and {stack['loop']})" if stack else ""


def _f(value: float | None, fmt: str = ".1f") -> str:
    return "n/a" if value is None else format(value, fmt)


def _ceiling_lines(d: dict[str, Any], clients: int) -> list[str]:
    if d.get("ceiling_texts_per_s") is None:
        return []
    share = d["ceiling_share_of_offline"]
    how = (
        f"in arrival-order batches of {d['small_batch_size']} on {d['small_batch_workers']} "
        "workers (as a server's batches run)"
        if d.get("small_batch_workers")
        else f"in batches of {d['small_batch_size']}"  # older reports: length-sorted
    )
    return [
        f"Ceiling at {clients} clients: the model alone {how}, clients / workers being the "
        f"most a batch can hold on average, runs **{_f(d['ceiling_texts_per_s'])} texts/s**, "
        f"{_f(share and 100 * share, '.0f')}% of offline: about the most a server can reach here.",
        "",
    ]


def _cpu(mode: dict[str, Any]) -> str:
    cpu = mode.get("server_cpu_ms_per_request")  # None off Linux and in older reports
    if not cpu:
        return "n/a"
    return f"{cpu['event_loop']:.2f} / {cpu['other_threads']:.2f}"


def _batcher_lines(w: dict[str, Any], d: dict[str, Any]) -> list[str]:
    b = w.get("batcher")
    if b is None:
        return []
    share = d["batcher_share_of_offline"]
    return [
        f"Batcher without HTTP: the server's micro-batcher and model with {b['clients']} "
        f"in-process clients run **{_f(b['texts_per_s'])} texts/s** "
        f"({_f(share and 100 * share, '.0f')}% of offline) in batches of "
        f"{_f(b['mean_batch'])} on average; the rest of the gap to it is HTTP.",
        "",
    ]


def markdown(report: dict[str, Any]) -> str:
    """The human-readable report."""
    s = report["settings"]
    lines = [
        "# umr bench serve",
        "",
        f"Machine: {machine_line(report['machine'])}",
        "",
        f"{s['clients']} closed-loop clients ({_CLIENTS[s.get('load_client', 'python')]}), "
        f"one text per request, {s['duration_s']:.0f} s per "
        f"mode, server `--threads {report['embedder']['threads']}` in a child process on "
        f"127.0.0.1{_stack(report.get('server_stack'))}, batch wait {s['batch_wait_ms']} ms. "
        "Offline = `Embedder.embed_text` on "
        "all texts in one call (best of two runs); batch-1 = one text per call (lower median "
        "of two runs).",
        "",
    ]
    for name, w in report["workloads"].items():
        d = report["derived"][name]
        lines += [
            f"## {name}: {w['description']}",
            "",
            f"Offline batch: **{_f(d['offline_texts_per_s'])} texts/s**; batch-1 p50 "
            f"**{_f(d['batch1_p50_ms'], '.2f')} ms**; latency floor at {s['clients']} clients "
            f"(clients / offline throughput): {_f(d['latency_floor_ms'], '.1f')} ms.",
            "",
            *_ceiling_lines(d, s["clients"]),
            *_batcher_lines(w, d),
            "| mode | req/s | % of offline | % of ceiling | p50 ms | p99 ms | p99 / batch-1 "
            "| errors | requests per model call | server CPU ms per request: event loop / other "
            "threads |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for mode, m in w["server"].items():
            lat = m["latency"] or {}
            dm = d["modes"][mode]
            share, of_ceiling = dm["share_of_offline"], dm.get("share_of_ceiling")
            lines.append(
                f"| {mode} | {_f(m['requests_per_s'])} | {_f(share and 100 * share)} "
                f"| {_f(of_ceiling and 100 * of_ceiling)} "
                f"| {_f(lat.get('p50_ms'), '.1f')} | {_f(lat.get('p99_ms'), '.1f')} "
                f"| {_f(dm['p99_over_batch1'], '.1f')} | {m['errors']} "
                f"| {_f(m['mean_requests_per_call'], '.1f')} | {_cpu(m)} |"
            )
        lines.append("")
    lines += ["## Targets", "", "| target | value | threshold | met |", "|---|---:|---:|---|"]
    for t in report["targets"]:
        verdict = {True: "met", False: "**missed**", None: "not measured"}[t["met"]]
        lines.append(
            f"| {t['name']} | {_f(t['value'], '.2f')} | {t['op']} {t['threshold']} | {verdict} |"
        )
    return "\n".join(lines) + "\n"


def headline(report: dict[str, Any]) -> dict[str, Any]:
    """One JSON line: per workload and mode, req/s, share of offline, p99."""
    out: dict[str, Any] = {"targets_met": all(t["met"] for t in report["targets"])}
    for name, w in report["workloads"].items():
        for mode, m in w["server"].items():
            share = report["derived"][name]["modes"][mode]["share_of_offline"]
            out[f"{name}.{mode}"] = {
                "rps": round(m["requests_per_s"] or 0, 1),
                "share_of_offline": None if share is None else round(share, 3),
                "p99_ms": round(m["latency"]["p99_ms"], 2) if m["latency"] else None,
                "errors": m["errors"],
            }
    return out


def write(report: dict[str, Any], out: Path) -> None:
    """``bench_serve.json`` and ``bench_serve.md`` in ``out`` (written atomically)."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "bench_serve.json", json.loads(json.dumps(report, default=str)))
    atomic_write_bytes(out / "bench_serve.md", markdown(report).encode("utf-8"))
