"""Choosing and opening what runs a bundle, with substituted provider lists and GPUs.

Nothing here needs a GPU: plans are checked as data, ORT's silent fallback is provoked
for real on this CPU-only install, and the IO-binding runner runs its path on the CPU.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import onnx
import pytest
from umr.runtime import backend as backend_mod
from umr.runtime.backend import plan_backend, tensorrt_refusal
from umr.runtime.cuda_io import IoBindingRunner, OrtRunner
from umr.runtime.embedder import Embedder
from umr.runtime.gpu_env import GpuInfo
from umr.runtime.session import create_session

from umr.atomic import atomic_write_json
from umr.bundle import read_manifest, sha256_file
from umr.errors import ProviderUnavailableError

CPU, CUDA, TRT = "CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"
H100 = GpuInfo("NVIDIA H100 80GB HBM3", "9.0")


@pytest.fixture
def fake_gpu(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> GpuInfo:
    monkeypatch.setattr(backend_mod, "gpu_info", lambda device_id=0: H100)
    monkeypatch.setenv("UMR_CACHE_DIR", str(tmp_path / "cache"))
    return H100


def _with_ms_domain(bundle_path: Path) -> None:
    """Declare com.microsoft in the fp32 graph (as ORT's optimizer output does); re-sum it."""
    path = bundle_path / "model.onnx"
    model = onnx.load(str(path))
    model.opset_import.append(onnx.helper.make_opsetid("com.microsoft", 1))
    onnx.save(model, str(path))
    _rewrite_manifest(bundle_path, lambda m: m["files"].update({"model.onnx": sha256_file(path)}))


def _rewrite_manifest(bundle_path: Path, edit) -> None:  # type: ignore[no-untyped-def]
    obj = json.loads((bundle_path / "umr.json").read_text())
    edit(obj)
    atomic_write_json(bundle_path / "umr.json", obj)


def _add_engine(bundle_path: Path, gpu: str = H100.name, trt: str = "10.13.0") -> str:
    """List a (fake) engine under the fp32 variant, with its checksum."""
    name = "model.fake.engine"
    (bundle_path / name).write_bytes(b"not a real engine")
    digest = sha256_file(bundle_path / name)
    record = {
        "file": name,
        "sha256": digest,
        "gpu": gpu,
        "compute_capability": "9.0",
        "tensorrt": trt,
        "profile": {"input_ids": [[1, 1], [32, 16], [64, 16]]},
    }

    def edit(m: dict) -> None:
        m["files"][name] = digest
        m["variants"]["fp32"]["details"] = {"tensorrt_engines": [record]}

    _rewrite_manifest(bundle_path, edit)
    return name


# --- ONNX Runtime providers ---------------------------------------------------------------


def test_cpu_and_auto_on_a_cpu_only_machine(tiny_bundle) -> None:
    m = read_manifest(tiny_bundle.path)
    for requested in ("cpu", "auto"):
        plan = plan_backend(tiny_bundle.path, m, "fp32", requested, available=[CPU])
        assert (plan.provider, plan.providers, plan.max_rows) == ("cpu", [(CPU, {})], None)


def test_auto_prefers_tensorrt_with_profile_and_keyed_cache(
    tiny_bundle, fake_gpu, tmp_path
) -> None:
    m = read_manifest(tiny_bundle.path)
    plan = plan_backend(tiny_bundle.path, m, "fp32", "auto", available=[TRT, CUDA, CPU])
    assert plan.provider == "tensorrt" and plan.max_rows == 64
    assert [n for n, _ in plan.providers] == [TRT, CUDA, CPU]
    opts = plan.providers[0][1]
    assert opts["trt_profile_max_shapes"].split(",")[0] == "input_ids:64x16"  # max_seq_length 16
    cache = Path(opts["trt_engine_cache_path"])
    assert cache.parent == tmp_path / "cache" / "tensorrt" and cache.name.startswith("tiny-")
    assert opts["trt_fp16_enable"] is False  # fp32 variant


def test_cache_dir_differs_per_variant_file(tiny_bundle, fake_gpu) -> None:
    m = read_manifest(tiny_bundle.path)
    dirs = {
        plan_backend(tiny_bundle.path, m, v, "tensorrt", available=[TRT, CPU]).providers[0][1][
            "trt_engine_cache_path"
        ]
        for v in ("fp32", "int8")
    }
    assert len(dirs) == 2


def test_tensorrt_refuses_a_graph_with_ort_only_ops(tiny_bundle, fake_gpu) -> None:
    _with_ms_domain(tiny_bundle.path)
    m = read_manifest(tiny_bundle.path)
    with pytest.raises(ProviderUnavailableError, match=r"com\.microsoft") as err:
        plan_backend(tiny_bundle.path, m, "fp32", "tensorrt", available=[TRT, CUDA, CPU])
    assert "plain export" in str(err.value)


def test_auto_skips_tensorrt_for_a_graph_with_ort_only_ops(tiny_bundle, fake_gpu, caplog) -> None:
    _with_ms_domain(tiny_bundle.path)
    m = read_manifest(tiny_bundle.path)
    with caplog.at_level(logging.INFO, logger="umr.runtime.providers"):
        plan = plan_backend(tiny_bundle.path, m, "fp32", "auto", available=[TRT, CUDA, CPU])
    assert plan.provider == "cuda"
    assert [n for n, _ in plan.providers] == [CUDA, CPU]
    assert any("passed over tensorrt" in r.getMessage() for r in caplog.records)


def test_dynamic_int8_is_not_for_tensorrt(tiny_bundle) -> None:
    m = read_manifest(tiny_bundle.path)
    var = m.variant("int8")
    assert tensorrt_refusal(tiny_bundle.path / var.file, var) is None
    dynamic = type(var)(var.name, var.file, var.dtype, (), {"activations": "uint8, dynamic"})
    assert "Q/DQ" in (tensorrt_refusal(tiny_bundle.path / var.file, dynamic) or "")


def test_cuda_on_a_cpu_only_install_fails_before_hashing(tiny_bundle, cpu_only_ort) -> None:
    (tiny_bundle.path / "model.onnx").write_bytes(b"corrupt")  # would be a ChecksumError
    with pytest.raises(ProviderUnavailableError) as err:
        Embedder.load(tiny_bundle.path, provider="cuda")
    assert "pip install 'umr[gpu]'" in str(err.value) and CUDA in str(err.value)


@pytest.mark.skipif(
    "CUDAExecutionProvider" in __import__("onnxruntime").get_available_providers(),
    reason="this ONNX Runtime has the CUDA EP: the fallback needs a CPU-only install",
)
@pytest.mark.filterwarnings("ignore:Specified provider")  # ORT's own warning, then the fallback
def test_ort_silent_fallback_is_caught_for_real(tiny_bundle) -> None:
    """This ORT has no CUDA EP: asked for it anyway, ORT runs on CPU; we must refuse."""
    providers = [(CUDA, {"device_id": 0}), (CPU, {})]
    with pytest.raises(ProviderUnavailableError, match="fell back silently"):
        create_session(tiny_bundle.path / "model.onnx", providers, 1)


# --- runners ---------------------------------------------------------------------------------


def test_io_binding_runner_matches_plain_run_on_cpu(tiny_bundle) -> None:
    emb = Embedder.load(tiny_bundle.path, threads=1)
    assert isinstance(emb._run, OrtRunner)
    texts = ["the python list", "a query", "text with the list of it"]
    want = emb.embed_text(texts)
    emb._run = IoBindingRunner(emb._session, emb.manifest.output, device="cpu")
    np.testing.assert_array_equal(emb.embed_text(texts), want)


def test_io_binding_uploads_a_shared_array_once(tiny_bundle, monkeypatch) -> None:
    emb = Embedder.load(tiny_bundle.path, threads=1)
    runner = IoBindingRunner(emb._session, emb.manifest.output, device="cpu")
    calls: list[tuple[int, ...]] = []
    real = runner._from_numpy
    runner._from_numpy = lambda arr, dev, i: calls.append(arr.shape) or real(arr, dev, i)
    ids = np.array([[2, 20, 3]], np.int64)
    mask = np.ones_like(ids)
    out = runner(
        {"input_ids": ids, "attention_mask": mask, "token_type_ids": 0 * ids, "pool_mask": mask}
    )
    assert out.shape == (1, 8) and len(calls) == 3


def test_max_rows_caps_the_rows_per_call(tiny_bundle) -> None:
    emb = Embedder.load(tiny_bundle.path, threads=1)
    want = emb.embed_text(["a", "the list", "python text", "it is"] * 3)
    rows: list[int] = []
    inner = emb._run
    emb._run = lambda feeds: rows.append(len(feeds["input_ids"])) or inner(feeds)
    emb._max_rows, emb.max_batch_tokens = 5, None
    np.testing.assert_allclose(
        emb.embed_text(["a", "the list", "python text", "it is"] * 3), want, atol=1e-6
    )
    assert max(rows) <= 5 and sum(rows) == 12


# --- serialized engines ------------------------------------------------------------------


def test_engine_request_without_packages_says_what_is_missing(tiny_bundle) -> None:
    with pytest.raises(ProviderUnavailableError) as err:
        Embedder.load(tiny_bundle.path, provider="tensorrt-engine")
    msg = str(err.value)
    assert "tensorrt" in msg and "cuda-python" in msg and "pip install 'umr[gpu]'" in msg


@pytest.fixture
def fake_trt(monkeypatch: pytest.MonkeyPatch, fake_gpu: GpuInfo) -> None:
    """tensorrt + cuda-python 'installed', TensorRT 10.13.0, an H100."""
    from umr.runtime import trt_engine

    monkeypatch.setattr(backend_mod, "importable", lambda name: True)
    monkeypatch.setattr(trt_engine, "tensorrt_version", lambda: "10.13.0")


def test_engine_request_without_an_engine_says_how_to_build_one(tiny_bundle, fake_trt) -> None:
    m = read_manifest(tiny_bundle.path)
    with pytest.raises(ProviderUnavailableError, match="umr export --tensorrt"):
        plan_backend(tiny_bundle.path, m, "fp32", "tensorrt-engine", available=[CPU])


def test_matching_engine_is_planned_without_ort(tiny_bundle, fake_trt) -> None:
    name = _add_engine(tiny_bundle.path)
    m = read_manifest(tiny_bundle.path)
    for requested in ("tensorrt-engine", "auto"):
        plan = plan_backend(tiny_bundle.path, m, "fp32", requested, available=[CPU])
        assert (plan.provider, plan.path.name, plan.providers) == ("tensorrt-engine", name, [])


def test_engine_for_another_gpu_is_refused_or_skipped(tiny_bundle, fake_trt, caplog) -> None:
    _add_engine(tiny_bundle.path, gpu="NVIDIA A100-SXM4-80GB")
    m = read_manifest(tiny_bundle.path)
    with pytest.raises(ProviderUnavailableError) as err:
        plan_backend(tiny_bundle.path, m, "fp32", "tensorrt-engine", available=[CPU])
    assert "A100" in str(err.value) and "H100" in str(err.value)
    with caplog.at_level(logging.INFO, logger="umr.runtime.backend"):
        plan = plan_backend(tiny_bundle.path, m, "fp32", "auto", available=[CPU])
    assert plan.provider == "cpu"
    assert any("skips the TensorRT engine" in r.getMessage() for r in caplog.records)


def test_engine_for_another_tensorrt_version_is_refused(tiny_bundle, fake_trt) -> None:
    _add_engine(tiny_bundle.path, trt="10.9.0")
    m = read_manifest(tiny_bundle.path)
    with pytest.raises(ProviderUnavailableError, match=r"TensorRT 10\.9\.0"):
        plan_backend(tiny_bundle.path, m, "fp32", "tensorrt-engine", available=[CPU])


def test_auto_on_cpu_ignores_engines_when_tensorrt_is_missing(tiny_bundle, cpu_only_ort) -> None:
    _add_engine(tiny_bundle.path)
    emb = Embedder.load(tiny_bundle.path, provider="auto", threads=1)
    assert emb.provider == "cpu" and emb.embed_text(["a"]).shape == (1, 8)


# --- the fp16 variant ----------------------------------------------------------------------------


def _add_fp16(bundle_path: Path) -> None:
    from umr.export.fp16 import write_fp16

    res = write_fp16(bundle_path / "model.onnx", bundle_path / "model.fp16.onnx")
    digest = sha256_file(bundle_path / "model.fp16.onnx")

    def edit(m: dict) -> None:
        m["files"]["model.fp16.onnx"] = digest
        m["variants"]["fp16"] = {
            "file": "model.fp16.onnx",
            "dtype": "float16",
            "details": res.details(),
        }

    _rewrite_manifest(bundle_path, edit)


def test_fp16_variant_serves_on_cpu_with_fp32_io_close_to_fp32(tiny_bundle) -> None:
    _add_fp16(tiny_bundle.path)
    texts = ["the python list", "a query", "text with the list of it", "it"]
    want = Embedder.load(tiny_bundle.path, variant="fp32", threads=1).embed_text(texts)
    emb = Embedder.load(tiny_bundle.path, variant="fp16", threads=1)
    got = emb.embed_text(texts)
    assert got.dtype == np.float32 and emb.max_batch_tokens is not None  # batch invariant
    np.testing.assert_allclose(got, want, atol=3e-3)


def test_fp16_variant_lets_tensorrt_use_fp16_kernels(tiny_bundle, fake_gpu) -> None:
    _add_fp16(tiny_bundle.path)
    m = read_manifest(tiny_bundle.path)
    plan = plan_backend(tiny_bundle.path, m, "fp16", "tensorrt", available=[TRT, CUDA, CPU])
    assert plan.providers[0][1]["trt_fp16_enable"] is True


# --- on a GPU (skipped here: no GPU, CPU-only onnxruntime) ----------------------------------


def _ort_has(provider: str) -> bool:
    """The provider is installed and a GPU is there (onnxruntime-gpu lists it regardless)."""
    from umr.runtime.gpu_env import gpu_info
    from umr.runtime.providers import available_providers

    return provider in available_providers() and gpu_info() is not None


@pytest.mark.skipif(
    not _ort_has(CUDA), reason="needs a CUDA GPU (onnxruntime-gpu with CUDAExecutionProvider)"
)
@pytest.mark.parametrize("variant", ["fp32", "fp16"])
def test_cuda_with_io_binding_matches_cpu(tiny_bundle, variant) -> None:
    _add_fp16(tiny_bundle.path)
    texts = ["the python list", "a query", "text with the list of it", "it"] * 10
    want = Embedder.load(tiny_bundle.path, variant="fp32", threads=1).embed_text(texts)
    emb = Embedder.load(tiny_bundle.path, variant=variant, provider="cuda")
    assert emb.provider == "cuda" and isinstance(emb._run, IoBindingRunner)
    np.testing.assert_allclose(
        emb.embed_text(texts), want, atol=3e-3 if variant == "fp16" else 1e-5
    )


@pytest.mark.skipif(
    not _ort_has(TRT), reason="needs TensorRT (onnxruntime-gpu with TensorrtExecutionProvider)"
)
def test_tensorrt_ep_caches_its_engine_under_the_key(tiny_bundle, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("UMR_CACHE_DIR", str(tmp_path))
    texts = ["the python list", "a query"] * 40  # more rows than the profile's 64
    want = Embedder.load(tiny_bundle.path, threads=1).embed_text(texts)
    emb = Embedder.load(tiny_bundle.path, provider="tensorrt")
    assert emb.provider == "tensorrt" and emb._max_rows == 64
    np.testing.assert_allclose(emb.embed_text(texts, batch_size=128), want, atol=1e-4)
    (key,) = (tmp_path / "tensorrt").iterdir()
    assert key.name.startswith("tiny-") and any(key.iterdir())


@pytest.mark.skipif(
    not _ort_has(CUDA), reason="needs a CUDA GPU (onnxruntime-gpu with CUDAExecutionProvider)"
)
def test_cuda_embeds_images_and_pairs_like_the_cpu(mm_bundle) -> None:
    mm = mm_bundle
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (5 + i % 7, 9 - i % 5, 3), dtype=np.uint8) for i in range(9)]
    texts = ["the python list", "a", "", "query text", "it"] * 2
    cpu = Embedder.load(mm.path, threads=1)
    gpu = Embedder.load(mm.path, provider="cuda")
    assert gpu.provider == "cuda" and isinstance(gpu._image_graph().backend.run, IoBindingRunner)
    for batch in (1, 4, 32):
        np.testing.assert_allclose(
            gpu.embed_image(images, batch_size=batch), cpu.embed_image(images), atol=1e-5
        )
        np.testing.assert_allclose(
            gpu.embed_fused(texts[:9], images, instruction="in red", batch_size=batch),
            cpu.embed_fused(texts[:9], images, instruction="in red"),
            atol=1e-5,
        )
