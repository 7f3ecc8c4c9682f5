"""``provider="tensorrt-engine"`` on a multimodal bundle: the fused graph's own engine.

The engine runner is replaced by one that runs the ONNX graph the engine stands for on
ORT's CPU provider (and records its calls), so which engine each call reaches, the rows
per call and the errors are checked for real; TensorRT and CUDA are not (the last test
builds and runs a real engine of the fused graph and skips without a GPU).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from umr.runtime import backend as backend_mod
from umr.runtime import trt_engine
from umr.runtime.embedder import Embedder
from umr.runtime.gpu_env import GpuInfo, gpu_info, importable
from umr.runtime.image_input import fused_manifest
from umr.runtime.providers import ENGINE
from umr.runtime.trt_profile import image_profile, pixel_dims, profile_for

from umr.atomic import atomic_write_json
from umr.bundle import read_manifest, sha256_file
from umr.errors import ManifestError, ProviderUnavailableError

H100 = GpuInfo("NVIDIA H100 80GB HBM3", "9.0")
FUSED = ("input_ids", "attention_mask", "pool_mask", "pixel_values")
MAX_ROWS = 3


class FakeRunner:
    """Stands in for TrtEngineRunner: the engine file names the ONNX graph it runs."""

    calls: ClassVar[list[tuple[str, tuple[str, ...], int]]] = []

    def __init__(self, path: Path, inputs: Any, output: str, device_id: int = 0) -> None:
        import onnxruntime as ort

        self.name, self.inputs, self.max_rows = path.name, tuple(inputs), MAX_ROWS
        graph = path.parent / path.read_text().split()[-1]
        self.session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])

    def __call__(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        rows = len(feeds["input_ids"])
        assert rows <= self.max_rows, "more rows than the engine's profile allows"
        FakeRunner.calls.append((self.name, self.inputs, rows))
        return self.session.run(None, {n: feeds[n] for n in self.inputs})[0]


@pytest.fixture
def fake_engines(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, tuple[str, ...], int]]:
    """tensorrt + cuda-python 'installed', TensorRT 10.13.0, an H100, the fake runner."""
    monkeypatch.setattr(backend_mod, "importable", lambda name: True)
    monkeypatch.setattr(backend_mod, "gpu_info", lambda device_id=0: H100)
    monkeypatch.setattr(trt_engine, "tensorrt_version", lambda: "10.13.0")
    monkeypatch.setattr(trt_engine, "TrtEngineRunner", FakeRunner)
    FakeRunner.calls = []
    return FakeRunner.calls


def _add_engines(root: Path, *, fused: bool = True, fused_gpu: str = H100.name) -> None:
    """List a text engine (and a fused one) under variant fp32, as the exporter does."""
    m = read_manifest(root)
    doc = json.loads((root / "umr.json").read_text())
    details = doc["variants"]["fp32"]["details"]
    graphs = [("model.fp32.fake.engine", "model.onnx", m, H100.name)]
    if fused:
        graphs.append(
            ("multimodal.fp32.fake.engine", "multimodal.onnx", fused_manifest(m, "fp32"), fused_gpu)
        )
        details["fused_graph"] = {"batch_invariant": True}
    for engine, onnx_file, view, gpu in graphs:
        (root / engine).write_text(f"fake engine of {onnx_file}")
        digest = sha256_file(root / engine)
        doc["files"][engine] = digest
        record = {
            "file": engine,
            "sha256": digest,
            "gpu": gpu,
            "compute_capability": "9.0",
            "tensorrt": "10.13.0",
            "profile": profile_for(view, opt_batch=2, max_batch=MAX_ROWS).to_json(),
            "onnx": onnx_file,
        }
        where = details["fused_graph"] if onnx_file == "multimodal.onnx" else details
        where.setdefault("tensorrt_engines", []).append(record)
    atomic_write_json(root / "umr.json", doc)


def _images(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, size=(6 + i, 9, 3), dtype=np.uint8) for i in range(n)]


def test_engine_provider_runs_the_fused_graph_engine(mm_bundle, fake_engines) -> None:
    cpu = Embedder.load(mm_bundle.path, threads=1)
    texts, images = (
        ["the list", "a", "python text", "it", "the python", "list of it", "x"],
        _images(7),
    )
    want_img, want_pair = cpu.embed_image(images), cpu.embed_fused(texts, images)
    want_text = cpu.embed_text(texts)
    _add_engines(mm_bundle.path)
    emb = Embedder.load(mm_bundle.path, provider=ENGINE, threads=1)
    assert emb.provider == ENGINE and emb.modalities == ("text", "image", "text+image")
    np.testing.assert_allclose(emb.embed_image(images, batch_size=32), want_img, atol=1e-6)
    np.testing.assert_allclose(emb.embed_fused(texts, images), want_pair, atol=1e-6)
    np.testing.assert_allclose(emb.embed_text(texts, batch_size=32), want_text, atol=1e-6)
    fused = [c for c in fake_engines if c[0] == "multimodal.fp32.fake.engine"]
    text = [c for c in fake_engines if c[0] == "model.fp32.fake.engine"]
    assert {c[1] for c in fused} == {FUSED} and sum(c[2] for c in fused) == 14
    assert {c[1] for c in text} == {emb.manifest.inputs} and sum(c[2] for c in text) == 7
    assert max(c[2] for c in fake_engines) == MAX_ROWS  # capped by the profile's max batch


def test_auto_takes_both_engines(mm_bundle, fake_engines) -> None:
    _add_engines(mm_bundle.path)
    emb = Embedder.load(mm_bundle.path, provider="auto", threads=1)
    assert emb.provider == ENGINE and emb._image is not None
    assert emb._image.backend.provider == ENGINE and emb._image.backend.max_rows == MAX_ROWS
    emb.embed_image(_images(2))
    assert fake_engines[-1][0] == "multimodal.fp32.fake.engine"


def test_without_a_fused_engine_texts_embed_and_images_say_why(
    mm_bundle, fake_engines, cpu_only_ort
) -> None:
    _add_engines(mm_bundle.path, fused=False)
    emb = Embedder.load(mm_bundle.path, provider=ENGINE, threads=1)
    assert emb.embed_text(["the list"]).shape == (1, 8) and emb.modalities == ("text",)
    with pytest.raises(ProviderUnavailableError) as err:
        emb.embed_image(_images(1))
    msg = str(err.value)
    assert "cover the text graph only" in msg and "umr export --checkpoint" in msg
    auto = Embedder.load(mm_bundle.path, provider="auto", threads=1)  # ORT runs the fused graph
    assert auto.provider == ENGINE and auto._image.backend.provider == "cpu"  # type: ignore[union-attr]


def test_fused_engine_for_another_gpu_is_named(mm_bundle, fake_engines) -> None:
    _add_engines(mm_bundle.path, fused_gpu="NVIDIA A100-SXM4-80GB")
    emb = Embedder.load(mm_bundle.path, provider=ENGINE, threads=1)
    assert emb.embed_text(["a"]).shape == (1, 8)
    with pytest.raises(ProviderUnavailableError) as err:
        emb.embed_fused(["a"], _images(1))
    msg = str(err.value)
    assert "fused text+image graph" in msg and "A100" in msg and "H100" in msg


def test_fused_manifest_keeps_the_fused_graphs_engines_only(mm_bundle) -> None:
    _add_engines(mm_bundle.path)
    m = read_manifest(mm_bundle.path)
    fused = fused_manifest(m, "fp32").variant("fp32")
    (record,) = fused.details["tensorrt_engines"]
    assert record["file"] == "multimodal.fp32.fake.engine"
    doc = json.loads((mm_bundle.path / "umr.json").read_text())
    del doc["variants"]["fp32"]["details"]["fused_graph"]
    atomic_write_json(mm_bundle.path / "umr.json", doc)
    plain = fused_manifest(read_manifest(mm_bundle.path), "fp32").variant("fp32")
    assert "tensorrt_engines" not in plain.details  # the text graph's engines are not its


def test_fused_profile_fixes_the_pixel_shape_from_the_preprocessing(mm_bundle) -> None:
    m = read_manifest(mm_bundle.path)
    assert m.image is not None
    profile = profile_for(fused_manifest(m, "fp32"))
    assert profile == image_profile(m.image, m.max_seq_length)
    shapes = {name: rest for name, *rest in profile.shapes}
    assert shapes["pixel_values"] == [(1, 3, 8, 8), (32, 3, 8, 8), (64, 3, 8, 8)]
    assert shapes["input_ids"] == [(1, 1), (32, 16), (64, 16)]
    assert "pixel_values" not in {n for n, *_ in profile_for(m).shapes}  # the text graph's
    dynamic = dataclasses.replace(
        m.image, input_dims={"pixel_values": ("batch", "channels", "height", "width")}
    )
    assert pixel_dims(dynamic) == ("batch", 3, 8, 8)
    clash = dataclasses.replace(m.image, input_dims={"pixel_values": ("batch", 3, 16, 16)})
    with pytest.raises(ManifestError, match=r"preprocessed to \[3, 8, 8\]"):
        pixel_dims(clash)


# --- on a GPU (skipped here) ---------------------------------------------------------------------


def _gpu_missing() -> str:
    missing = [] if gpu_info() is not None else ["a CUDA GPU"]
    if not (importable("tensorrt") and importable("cuda")):
        missing.append("TensorRT (tensorrt and cuda-python: pip install 'umr[gpu]')")
    return " and ".join(missing)


@pytest.mark.skipif(bool(_gpu_missing()), reason=f"needs {_gpu_missing()}")
def test_fused_engine_runner_matches_onnx_runtime(mm_bundle, tmp_path, monkeypatch) -> None:
    """Build a real engine of the tiny fused graph, run images through it, compare with ORT."""
    from umr.export.tensorrt_engine import build_engine
    from umr.runtime.trt_engine import TrtEngineRunner

    monkeypatch.setenv("UMR_CACHE_DIR", str(tmp_path))
    cpu = Embedder.load(mm_bundle.path, threads=1)
    fused = fused_manifest(cpu.manifest, "fp32")
    profile = profile_for(fused, opt_batch=2, max_batch=4)
    gpu = gpu_info()
    assert gpu is not None
    engine = tmp_path / "fused.engine"
    build_engine(mm_bundle.path / "multimodal.onnx", engine, profile, gpu)
    runner = TrtEngineRunner(engine, fused.inputs, fused.output)
    assert runner.max_rows == 4
    images = _images(6)
    want = cpu.embed_image(images)
    graph = cpu._image
    assert graph is not None
    cpu._image = type(graph)(
        graph.preprocess,
        graph.tokenizer,
        graph.pixel_input,
        graph.image_tokens,
        backend_mod.Backend(runner, runner, ENGINE, runner.max_rows, is_ort=False),
        graph.variant,
    )
    np.testing.assert_allclose(cpu.embed_image(images), want, atol=1e-4)
    runner.close()
