"""`umr bench gpu`: options, the measurements and the report, run here on CPU engines only
(the CUDA engines need onnxruntime-gpu and a GPU; a real run's report is in docs/bench)."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
from umr.bench.gpu_bench import GpuBenchConfig, bench_images, bench_texts, run_gpu_bench
from umr.bench.gpu_cli import configure_parser, markdown, run
from umr.bench.gpu_pooling import run_pooling_on_gpu

from umr.errors import InputValueError, ProviderUnavailableError


def test_help_says_what_runs_against_what() -> None:
    p = argparse.ArgumentParser()
    configure_parser(p)
    text = p.format_help()
    for word in ("CUDA execution provider", "IO binding", "cpu:fp32", "Triton", "umr[gpu]"):
        assert word in text, word


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"engines": ("cuda:fp16",)}, "must include 'cpu:fp32'"),
        ({"engines": ("gpu:fp16", "cpu:fp32")}, "PROVIDER:VARIANT"),
        ({"engines": ("cuda", "cpu:fp32")}, "PROVIDER:VARIANT"),
        ({"items": 0}, "items"),
        ({"rounds": -1}, "rounds"),
    ],
)
def test_bad_config_names_the_field(tmp_path, kwargs, message) -> None:
    with pytest.raises(InputValueError, match=message):
        GpuBenchConfig(bundle=tmp_path, **kwargs)


def test_inputs_are_real_texts_and_distinct_images() -> None:
    texts = bench_texts(70)
    assert len(texts) == 70 and all(isinstance(t, str) and t for t in texts)
    images = bench_images(4, 16, seed=0)
    assert all(i.shape == (16, 16, 3) and i.dtype == np.uint8 for i in images)
    assert not np.array_equal(images[0], images[1])
    assert np.array_equal(bench_images(1, 16, seed=0)[0], images[0])


def test_measures_every_engine_and_kind_with_parity(mm_bundle) -> None:
    cfg = GpuBenchConfig(
        bundle=mm_bundle.path,
        engines=("cpu:int8", "cpu:fp32"),
        items=6,
        rounds=2,
        latency_reps=3,
        cpu_threads=1,
        image_size=8,
    )
    lines: list[str] = []
    got = run_gpu_bench(cfg, log=lines.append)
    assert got["kinds"] == ["text", "image", "fused"] and len(lines) == 2 * 2 * 3
    rows = {(r["engine"], r["kind"]): r for r in got["rows"]}
    assert set(rows) == {(e, k) for e in cfg.engines for k in got["kinds"]}
    for (engine, _), r in rows.items():
        assert r["items_per_s"] > 0 and r["batch1"]["n"] == 2 * 3
        cos = r["parity_vs_cpu_fp32"]
        if engine == "cpu:fp32":
            assert r["speedup_vs_cpu_fp32"] == 1.0 and cos["min_cosine"] > 0.99999
        else:  # the tiny bundle's "int8" graph is perturbed on purpose: parity sees it
            assert cos["min_cosine"] < 0.99999


def test_text_bundle_measures_text_only(tiny_bundle) -> None:
    cfg = GpuBenchConfig(
        bundle=tiny_bundle.path, engines=("cpu:fp32",), items=3, rounds=1, latency_reps=1
    )
    assert run_gpu_bench(cfg, log=lambda _: None)["kinds"] == ["text"]


def test_cuda_engine_without_the_cuda_provider_says_what_is_missing(tiny_bundle, cpu_only_ort):
    cfg = GpuBenchConfig(bundle=tiny_bundle.path, items=2, rounds=1, latency_reps=1)
    with pytest.raises(ProviderUnavailableError, match="onnxruntime-gpu"):
        run_gpu_bench(cfg, log=lambda _: None)


def test_run_writes_json_and_markdown(mm_bundle, tmp_path, monkeypatch, capsys) -> None:
    p = argparse.ArgumentParser()
    configure_parser(p)
    sizes = ["--items", "2", "--rounds", "1", "--latency-reps", "1", "--no-pooling"]
    args = p.parse_args(
        ["--bundle", str(mm_bundle.path), "--out", str(tmp_path), "--engines", "cpu:fp32", *sizes]
    )
    assert run(args) == 0
    report = json.loads((tmp_path / "bench_gpu.json").read_text())
    assert report["pooling"] == {"skipped": "--no-pooling"}
    assert report["machine"]["threads"] >= 1
    md = (tmp_path / "bench_gpu.md").read_text()
    assert md == markdown(report) and "| cpu:fp32 | fused | 32 |" in md
    assert "Skipped: --no-pooling" in capsys.readouterr().out


def test_pooling_part_skips_with_a_reason_without_a_gpu() -> None:
    torch = pytest.importorskip("torch", reason="torch is not installed")
    got = run_pooling_on_gpu(reps=1)
    if torch.cuda.is_available():
        assert got["rows"] and all(r["max_abs_diff"] < 1e-3 for r in got["rows"])
    else:
        assert "CUDA GPU" in got["skipped"]


def test_markdown_lists_pooling_rows() -> None:
    report = {
        "gpu": {"name": "NVIDIA H100 80GB HBM3", "cc": "9.0"},
        "machine": {"cpu": "x", "cores": 16},
        "gpu_packages": {},
        "embedding": {"rows": []},
        "pooling": {
            "rows": [
                {
                    "shape": [1, 16, 384],
                    "dtype": "float16",
                    "triton_ms": 0.05,
                    "eager_ms": 0.1,
                    "speedup": 2.0,
                    "max_abs_diff": 6e-5,
                }
            ]
        },
    }
    md = markdown(report)
    assert "NVIDIA H100 80GB HBM3 (compute 9.0)" in md and "| 1x16x384 | float16 |" in md
