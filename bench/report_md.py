"""Markdown rendering of a text-benchmark report, and README block replacement."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from umr.bench.machine import machine_line
from umr.bench.targets import Target, evaluate_targets

from umr.atomic import atomic_write_bytes
from umr.errors import InputValueError

START, END = "<!-- bench:text:start -->", "<!-- bench:text:end -->"
_LABELS = {"st": "sentence-transformers (torch)", "fp32": "umr fp32", "int8": "umr int8"}


def _f(value: float | None, fmt: str = ".1f") -> str:
    return "n/a" if value is None else format(value, fmt)


def engine_table(report: dict[str, Any]) -> str:
    """engine | docs/s | tokens/s | x ST | p50/p95/p99 ms | GFLOP/s | % of peak | peak RSS."""
    rows = [
        "| engine | docs/s | tokens/s | x ST | batch-1 p50/p95/p99 ms | GFLOP/s | % of peak "
        "| peak RSS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, e in report["engines"].items():
        t, lat = e["throughput"], e["latency"]
        rows.append(
            f"| {_LABELS.get(name, name)} | {_f(t['docs_per_s'])} | {_f(t['tokens_per_s'], '.0f')}"
            f" | {_f(t['x_st'], '.2f')} | {_f(lat['p50_ms'], '.2f')} / {_f(lat['p95_ms'], '.2f')}"
            f" / {_f(lat['p99_ms'], '.2f')} | {_f(e['gflops'])} | {_f(e['pct_of_peak'])}"
            f" | {_f(e['maxrss_mb'], '.0f')} |"
        )
    return "\n".join(rows)


def quality_table(report: dict[str, Any]) -> str:
    """Recall@10 per engine and cosine drift to umr fp32."""
    q = report["quality"]
    drift = {"int8": q["int8_vs_fp32_cosine"], "st": q["st_vs_fp32_cosine"]}
    rows = [
        "| engine | Recall@10 (hit rate) | min cos to fp32 | mean cos to fp32 |",
        "|---|---:|---:|---:|",
    ]
    for name in report["engines"]:
        d = drift.get(name, {})
        lo, mean = (
            ("reference", "reference")
            if name == "fp32"
            else (_f(d.get("min"), ".4f"), _f(d.get("mean"), ".4f"))
        )
        rows.append(
            f"| {_LABELS.get(name, name)} | {_f(q['recall_at_10'].get(name), '.3f')} "
            f"| {lo} | {mean} |"
        )
    return "\n".join(rows)


def index_table(report: dict[str, Any]) -> str:
    """Recall and QPS of umr HNSW, raw hnswlib and NumPy brute force."""
    ix = report["index"]
    qps = ix["qps"]
    rows = [
        "| search | recall@10 vs exact | QPS batch-1 | QPS batched |",
        "|---|---:|---:|---:|",
        f"| umr Index (HNSW) | {_f(ix['recall_at_10'], '.4f')} | {_f(qps['umr_loop'], '.0f')} "
        f"| {_f(qps['umr_batch'], '.0f')} |",
        f"| raw hnswlib, same graph (the QPS target's reference) | {_f(ix['recall_at_10'], '.4f')} "
        f"| {_f(qps.get('same_loop'), '.0f')} | {_f(qps.get('same_batch'), '.0f')} |",
        f"| raw hnswlib, its own build | {_f(ix['hnswlib_recall_at_10'], '.4f')} "
        f"| {_f(qps['hnswlib_loop'], '.0f')} | {_f(qps['hnswlib_batch'], '.0f')} |",
        f"| NumPy brute force | 1.0000 | {_f(qps['brute_loop'], '.0f')} "
        f"| {_f(qps['brute_batch'], '.0f')} |",
    ]
    return "\n".join(rows)


def targets_table(targets: list[Target]) -> str:
    """Each target with its measured value and met / not met."""
    verdict = {True: "met", False: "**not met**", None: "not measured"}
    rows = ["| target | measured | goal | verdict |", "|---|---:|---:|---|"]
    for t in targets:
        rows.append(
            f"| {t.name} | {_f(t.value, '.3f')} | {t.op} {t.threshold:g} | {verdict[t.met]} |"
        )
    return "\n".join(rows)


def _setup_line(report: dict[str, Any]) -> str:
    c, cfg, pk = report["corpus"], report["config"], report["peak"]
    blas = ", ".join(f"{b['internal_api']} {b['architecture']}" for b in pk["blas"]) or "?"
    return (
        f"{c['n_docs']} stdlib docstrings ({c['tokens']} tokens after truncation to "
        f"{cfg['max_seq_length']}, mean {c['mean_tokens']:.0f}), batch {cfg['batch_size']}, "
        f"{cfg['threads']} threads, median of {cfg['rounds']} interleaved rounds; batch-1 latency "
        f"over {c['n_short_queries']} queries of <= 16 tokens. Peak = NumPy float32 "
        f"{pk['n']}^3 matmul, best of {len(pk.get('samples_gflops', [1]))} samples: "
        f"{pk['gflops']:.0f} GFLOP/s ({blas}); int8 is credited the same FLOPs, so its share "
        "of this fp32 peak can pass 100%."
    )


def _index_line(report: dict[str, Any]) -> str:
    ix, e2e = report["index"], report["index"]["e2e"]
    return (
        f"Index: {ix['size']} vectors ({ix['n_real']} real, rest clustered noise), "
        f"{ix['n_queries']} queries, M={ix['M']}, ef_construction={ix['ef_construction']}, "
        f"ef={ix['ef']}. End-to-end (embed + search) p50/p95/p99 ms: fp32 "
        f"{_f(e2e['fp32']['p50_ms'], '.2f')}/{_f(e2e['fp32']['p95_ms'], '.2f')}/"
        f"{_f(e2e['fp32']['p99_ms'], '.2f')}, int8 {_f(e2e['int8']['p50_ms'], '.2f')}/"
        f"{_f(e2e['int8']['p95_ms'], '.2f')}/{_f(e2e['int8']['p99_ms'], '.2f')}."
    )


def readme_block(report: dict[str, Any]) -> str:
    """The short block for the README: engine table, setup, index line, machine line."""
    return "\n\n".join(
        [
            engine_table(report),
            _setup_line(report),
            _index_line(report),
            f"Machine: {machine_line(report['machine'])}.",
        ]
    )


def render_markdown(report: dict[str, Any]) -> str:
    """The full bench_text.md: engines, quality, index, cold start, targets, machine."""
    cold = report["cold_start"]
    cold_line = ", ".join(
        f"{v} {cold[v]['total_s']:.2f} s (import {cold[v]['import_s']:.2f} s)" for v in cold
    )
    parts = [
        f"# Text embedding benchmark: {report['bundle']['name']}",
        engine_table(report),
        _setup_line(report),
        "## Retrieval quality (Python language reference: topic headings vs passages)",
        quality_table(report),
        "## Vector index",
        index_table(report),
        _index_line(report),
        f"Synthetic vectors: {report['index']['recipe_text']}",
        f"Cold start (fresh process, `import umr.runtime` + `Embedder.load`): {cold_line}.",
        "## Targets",
        targets_table(evaluate_targets(report)),
        f"Machine: {machine_line(report['machine'])}.",
    ]
    return "\n\n".join(parts) + "\n"


def replace_block(text: str, block: str, where: str = "text") -> str:
    """``text`` with everything between the bench markers replaced by ``block``.

    Idempotent: applying it twice with the same block changes nothing more. Raises
    ``InputValueError`` naming ``where`` if the markers are missing, repeated or reversed.
    """
    n_start, n_end = text.count(START), text.count(END)
    if n_start != 1 or n_end != 1:
        raise InputValueError(
            f"{where}: expected exactly one {START} and one {END} marker, "
            f"found {n_start} and {n_end}"
        )
    head, rest = text.split(START)
    if END not in rest:
        raise InputValueError(f"{where}: {END} comes before {START}")
    _, tail = rest.split(END)
    return f"{head}{START}\n{block.strip()}\n{END}{tail}"


def update_readme(path: str | os.PathLike[str], block: str) -> None:
    """Replace the marked block of the file at ``path`` in place (atomic write)."""
    target = Path(path)
    if not target.is_file():
        raise InputValueError(f"{target}: README to update does not exist")
    text = target.read_text(encoding="utf-8")
    atomic_write_bytes(target, replace_block(text, block, str(target)).encode("utf-8"))
