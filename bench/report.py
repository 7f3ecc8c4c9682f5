"""Turn raw measurements into the bench_text report (JSON, Markdown, PNG) and its headline."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from umr.bench.flops import EncoderShape, flops_for_lengths
from umr.bench.quality import cosine_drift, hit_rate_at_k
from umr.bench.stats import latency_summary, median, percentile, ratio
from umr.bench.synthetic import __doc__ as RECIPE_DOC
from umr.bench.targets import evaluate_targets

from umr.atomic import atomic_write_bytes, atomic_write_json

SCHEMA = "umr.bench.text/1"
HEADLINE_KEYS = (
    "st_docs_per_s",
    "fp32_docs_per_s",
    "int8_docs_per_s",
    "fp32_x_st",
    "int8_x_st",
    "st_p50_ms",
    "fp32_p50_ms",
    "int8_p50_ms",
    "fp32_pct_of_peak",
    "peak_gflops",
    "recall_at_10_st",
    "recall_at_10_fp32",
    "recall_at_10_int8",
    "int8_min_cosine",
    "hnsw_recall_at_10",
    "hnsw_vs_hnswlib_qps",
    "hnsw_vs_brute_qps",
    "e2e_p50_ms_fp32",
    "e2e_p50_ms_int8",
    "cold_start_s_fp32",
    "targets_met",
)


def encoder_shape(manifest: Any) -> EncoderShape:
    """The encoder's sizes, from the config.json of the weights the bundle came from."""
    model_dir = manifest.source.get("model_dir")
    if model_dir and (Path(model_dir) / "config.json").is_file():
        return EncoderShape.from_config(Path(model_dir) / "config.json")
    from umr.bench.engines import reference_model_path

    return EncoderShape.from_config(reference_model_path() / "config.json")


def _engine_entry(raw: dict, corpus: dict, flops: float, peak: float) -> dict[str, Any]:
    t_med = median(raw["throughput_s"])
    gflops = flops / t_med / 1e9
    return {
        "implementation": raw["ready"]["implementation"],
        "load_s": raw["ready"]["load_s"],
        "torch_loaded": raw["ready"]["torch_loaded"],
        "throughput": {
            "seconds_rounds": raw["throughput_s"],
            "docs_per_s_rounds": [corpus["n_docs"] / t for t in raw["throughput_s"]],
            "seconds_median": t_med,
            "docs_per_s": corpus["n_docs"] / t_med,
            "tokens_per_s": corpus["tokens"] / t_med,
        },
        "latency": latency_summary(raw["latency_s"]),
        "gflops": gflops,
        "pct_of_peak": 100.0 * gflops / peak,
        "maxrss_mb": raw.get("maxrss_mb"),
    }


def _quality(work: Path, texts: Any) -> dict[str, Any]:
    def vec(name: str) -> np.ndarray:
        return np.load(work / f"{name}.npy")

    recall = {
        e: hit_rate_at_k(
            vec(f"queries_{e}"), texts.query_topics, vec(f"passages_{e}"), texts.passage_topics
        )
        for e in ("st", "fp32", "int8")
    }

    def both(e: str) -> np.ndarray:
        return np.concatenate([vec(f"corpus_{e}"), vec(f"passages_{e}")])

    all_texts = [*texts.corpus, *texts.passages]
    int8_drift = cosine_drift(both("int8"), both("fp32"))
    int8_drift["worst_text"] = all_texts[int8_drift["argmin"]][:300]
    return {
        "recall_at_10": recall,
        "n_queries": len(texts.queries),
        "n_passages": len(texts.passages),
        "int8_vs_fp32_cosine": int8_drift,
        "st_vs_fp32_cosine": cosine_drift(both("st"), both("fp32")),
        "cosine_texts": "throughput corpus + reference passages",
    }


def _corpus_summary(corpus: dict) -> dict[str, Any]:
    lengths = corpus["lengths"]
    out = {k: v for k, v in corpus.items() if k not in ("lengths", "short_query_lengths")}
    out.update(
        mean_tokens=sum(lengths) / len(lengths),
        median_tokens=median(lengths),
        p95_tokens=percentile(lengths, 95),
        max_tokens=max(lengths),
    )
    return out


def assemble_report(raw: dict[str, Any], cfg: dict[str, Any], machine: dict) -> dict[str, Any]:
    """The full JSON-ready report from :func:`umr.bench.text_cli.measure`'s output."""
    manifest, corpus, peak = raw["manifest"], raw["corpus"], raw["peak"]
    shape = encoder_shape(manifest)
    flops = flops_for_lengths(shape, corpus["lengths"])
    engines = {
        name: _engine_entry(e, corpus, flops, peak["gflops"]) for name, e in raw["engines"].items()
    }
    st_rate = engines["st"]["throughput"]["docs_per_s"]
    for e in engines.values():
        e["throughput"]["x_st"] = ratio(e["throughput"]["docs_per_s"], st_rate)
        e["latency"]["p50_x_st"] = ratio(engines["st"]["latency"]["p50_ms"], e["latency"]["p50_ms"])
    index = dict(raw["index"], recipe_text=" ".join((RECIPE_DOC or "").split()))
    report = {
        "schema": SCHEMA,
        "config": {**cfg, "max_seq_length": manifest.max_seq_length},
        "bundle": {
            "name": manifest.name,
            "dim": manifest.dim,
            "variants": sorted(manifest.variants),
        },
        "machine": machine,
        "encoder": {
            **shape.__dict__,
            "flops_corpus": flops,
            "flops_formula": "per layer: 8*L*h^2 + 4*L*h*i + 4*L^2*h (2 FLOPs per multiply-add)",
        },
        "corpus": _corpus_summary(corpus),
        "peak": peak,
        "engines": engines,
        "quality": _quality(raw["work"], raw["texts"]),
        "index": index,
        "cold_start": raw["cold_start"],
        "phase_s": raw.get("phase_s", {}),
    }
    report["targets"] = [t.to_json() for t in evaluate_targets(report)]
    report["headline"] = headline(report)
    return report


def headline(report: dict[str, Any]) -> dict[str, Any]:
    """The numbers a reader wants first, one flat dict with :data:`HEADLINE_KEYS`."""
    e, q, ix = report["engines"], report["quality"], report["index"]
    met = [t.met for t in evaluate_targets(report)]
    return {
        **{f"{n}_docs_per_s": e[n]["throughput"]["docs_per_s"] for n in ("st", "fp32", "int8")},
        "fp32_x_st": e["fp32"]["throughput"]["x_st"],
        "int8_x_st": e["int8"]["throughput"]["x_st"],
        **{f"{n}_p50_ms": e[n]["latency"]["p50_ms"] for n in ("st", "fp32", "int8")},
        "fp32_pct_of_peak": e["fp32"]["pct_of_peak"],
        "peak_gflops": report["peak"]["gflops"],
        **{f"recall_at_10_{n}": q["recall_at_10"][n] for n in ("st", "fp32", "int8")},
        "int8_min_cosine": q["int8_vs_fp32_cosine"]["min"],
        "hnsw_recall_at_10": ix["recall_at_10"],
        "hnsw_vs_hnswlib_qps": ix["umr_vs_hnswlib_loop"],
        "hnsw_vs_brute_qps": ix["umr_vs_brute_loop"],
        "e2e_p50_ms_fp32": ix["e2e"]["fp32"]["p50_ms"],
        "e2e_p50_ms_int8": ix["e2e"]["int8"]["p50_ms"],
        "cold_start_s_fp32": report["cold_start"]["fp32"]["total_s"],
        "targets_met": f"{sum(m is True for m in met)}/{len(met)}",
    }


def write_outputs(report: dict[str, Any], out: Path, readme: str | os.PathLike[str] | None) -> None:
    """bench_text.json/.md/.png in ``out``; optionally the README block."""
    from umr.bench.plot import write_plot
    from umr.bench.report_md import readme_block, render_markdown, update_readme

    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "bench_text.json", json.loads(json.dumps(report)))
    atomic_write_bytes(out / "bench_text.md", render_markdown(report).encode("utf-8"))
    write_plot(report, out / "bench_text.png")
    if readme:
        update_readme(readme, readme_block(report))
