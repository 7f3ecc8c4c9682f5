"""The report path (assemble -> JSON/Markdown/PNG -> README) on fabricated measurements."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
from umr.bench.report import HEADLINE_KEYS, SCHEMA, assemble_report, headline, write_outputs
from umr.bench.report_md import END, START, render_markdown
from umr.bench.texts import BenchTexts

ENGINES = ("st", "fp32", "int8")


def _vectors(n, seed):
    x = np.random.default_rng(seed).standard_normal((n, 8)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _fake_raw(tmp_path):
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps({"num_hidden_layers": 2, "hidden_size": 8, "intermediate_size": 32})
    )
    manifest = SimpleNamespace(
        name="tiny",
        dim=8,
        max_seq_length=256,
        variants={"fp32": 0, "int8": 0},
        source={"model_dir": str(tmp_path)},
    )
    texts = BenchTexts(
        corpus=["a", "b", "c"],
        short_queries=["q"],
        passages=["p1", "p2", "p3", "p4"],
        passage_topics=["x", "x", "y", "z"],
        queries=["qx", "qy"],
        query_topics=["x", "y"],
        extra=[],
    )
    base = {"corpus": _vectors(3, 0), "passages": _vectors(4, 1), "queries": _vectors(2, 2)}
    for i, engine in enumerate(ENGINES):
        for name, vec in base.items():
            noise = 0.01 * i * _vectors(vec.shape[0], 10 + i)
            np.save(tmp_path / f"{name}_{engine}.npy", (vec + noise).astype(np.float32))
    speed = {"st": 1.0, "fp32": 3.0, "int8": 5.0}
    engines = {
        e: {
            "ready": {"implementation": e, "load_s": 0.1, "torch_loaded": e == "st"},
            "throughput_s": [0.3 / speed[e], 0.31 / speed[e]],
            "latency_s": [0.001 / speed[e]] * 20,
            "maxrss_mb": 100.0,
        }
        for e in ENGINES
    }
    qps = {
        f"{k}_{m}": v
        for k in ("umr", "hnswlib", "same", "brute")
        for m, v in (("loop", 10.0), ("batch", 20.0))
    }
    index = {
        "size": 100,
        "n_real": 10,
        "n_queries": 5,
        "M": 16,
        "ef_construction": 200,
        "ef": 64,
        "recall_at_10": 0.99,
        "hnswlib_recall_at_10": 0.99,
        "qps": qps,
        "umr_vs_hnswlib_loop": 1.0,
        "umr_vs_hnswlib_batch": 1.0,
        "umr_vs_brute_loop": 25.0,
        "umr_vs_brute_batch": 5.0,
        "e2e": {v: {"p50_ms": 1.0, "p95_ms": 2.0, "p99_ms": 3.0} for v in ("fp32", "int8")},
    }
    cold = {v: {"total_s": 0.5, "import_s": 0.2, "load_s": 0.3} for v in ("fp32", "int8")}
    corpus = {"n_docs": 3, "tokens": 30, "lengths": [5, 10, 15], "n_short_queries": 1}
    peak = {"gflops": 100.0, "n": 2048, "blas": [{"internal_api": "openblas", "architecture": "X"}]}
    raw = {
        "manifest": manifest,
        "corpus": corpus,
        "peak": peak,
        "engines": engines,
        "cold_start": cold,
        "index": index,
        "texts": texts,
        "work": tmp_path,
    }
    machine = {
        "cpu": "cpu",
        "cpu_flags": [],
        "cores": 2,
        "threads": 2,
        "os": "os",
        "python": "3",
        "packages": {},
        "date_utc": "now",
    }
    return raw, {"threads": 2, "rounds": 2, "batch_size": 32}, machine


def test_report_schema_and_headline(tmp_path):
    report = assemble_report(*_fake_raw(tmp_path))
    assert report["schema"] == SCHEMA
    for key in (
        "config",
        "machine",
        "encoder",
        "corpus",
        "peak",
        "engines",
        "quality",
        "index",
        "cold_start",
        "targets",
        "headline",
    ):
        assert key in report, key
    assert set(report["headline"]) == set(HEADLINE_KEYS)
    fp32 = report["engines"]["fp32"]
    assert fp32["throughput"]["x_st"] == pytest.approx(3.0)
    assert fp32["throughput"]["docs_per_s"] == pytest.approx(3 / (0.305 / 3.0))
    # GFLOP/s over the unpadded lengths: 2 layers * (8*L*64 + 4*L*8*32 + 4*L^2*8)
    flops = sum(2 * (512 * n + 1024 * n + 32 * n * n) for n in (5, 10, 15))
    assert report["encoder"]["flops_corpus"] == flops
    assert fp32["gflops"] == pytest.approx(flops / (0.305 / 3.0) / 1e9)
    assert report["quality"]["recall_at_10"]["fp32"] == 1.0
    json.dumps(report)  # must be plain JSON


def test_targets_are_computed_not_hardcoded(tmp_path):
    report = assemble_report(*_fake_raw(tmp_path))
    verdicts = {t["name"]: t["met"] for t in report["targets"]}
    assert verdicts["fp32 docs/s vs ST (x)"] is True  # 3x >= 2.5x
    assert verdicts["int8 docs/s vs ST (x)"] is True  # 5x >= 4x
    assert verdicts["HNSW QPS / brute force, batched"] is False  # 5x < 20x
    report["engines"]["fp32"]["throughput"]["x_st"] = 2.0
    assert headline(report)["targets_met"] != report["headline"]["targets_met"]


def test_outputs_and_readme_block(tmp_path):
    report = assemble_report(*_fake_raw(tmp_path))
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{START}\nold\n{END}\n\ntail\n")
    out = tmp_path / "out"
    write_outputs(report, out, readme)
    assert json.loads((out / "bench_text.json").read_text())["schema"] == SCHEMA
    assert (out / "bench_text.png").read_bytes()[:4] == b"\x89PNG"
    md = (out / "bench_text.md").read_text()
    assert "| umr fp32 |" in md and "**not met**" in md
    text = readme.read_text()
    assert "old" not in text and "| umr int8 |" in text and text.endswith("tail\n")
    assert render_markdown(report) == md
