"""ONNX domain scanning, engine records and matching; the engine runner itself on a GPU.

The first groups run anywhere. The last runs a real TensorRT engine and skips, saying
why, without TensorRT, cuda-python or a CUDA GPU (none of which this project's CI has).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from umr.runtime.gpu_env import GpuInfo, gpu_info, importable
from umr.runtime.onnx_domains import opset_domains, require_plain_onnx
from umr.runtime.trt_engine import (
    EngineRecord,
    describe_mismatch,
    engine_records,
    match_engine,
)

from umr.bundle import Variant
from umr.errors import BundleError, ProviderUnavailableError

H100 = GpuInfo("NVIDIA H100 80GB HBM3", "9.0")


def _model(path: Path, *, extra_domain: str = "", function_domain: str = "") -> Path:
    nodes = [helper.make_node("Identity", ["x"], ["y"])]
    opsets = [helper.make_opsetid("", 18)]
    functions = []
    if extra_domain:
        opsets.append(helper.make_opsetid(extra_domain, 1))
    if function_domain:
        body = [helper.make_node("Gelu", ["a"], ["b"], domain=function_domain)]
        functions.append(
            helper.make_function(
                "ai.test", "F", ["a"], ["b"], body, [helper.make_opsetid(function_domain, 1)]
            )
        )
        opsets.append(helper.make_opsetid("ai.test", 1))
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    model = helper.make_model(graph, opset_imports=opsets, functions=functions)
    onnx.save(model, str(path))
    return path


# --- which domains a file uses ---------------------------------------------------------------


def test_plain_graph_has_only_the_default_domain(tmp_path) -> None:
    assert opset_domains(_model(tmp_path / "m.onnx")) == {""}


def test_ort_fused_ops_are_found_in_the_model_and_in_functions(tmp_path) -> None:
    fused = _model(tmp_path / "a.onnx", extra_domain="com.microsoft")
    assert opset_domains(fused) == {"", "com.microsoft"}
    in_function = _model(tmp_path / "b.onnx", function_domain="com.microsoft")
    assert opset_domains(in_function) == {"", "ai.test", "com.microsoft"}
    with pytest.raises(ProviderUnavailableError, match=r"com\.microsoft.*plain export"):
        require_plain_onnx(in_function, "variant 'x'")
    require_plain_onnx(_model(tmp_path / "c.onnx", extra_domain="ai.umr"), "variant 'y'")


def test_scanner_agrees_with_onnx_on_a_large_initializer(tmp_path) -> None:
    """The graph (weights and all) is skipped by seeking, not parsed."""
    big = onnx.numpy_helper.from_array(np.ones((512, 512), np.float32), "W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 512])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 512])],
        [big],
    )
    ops = [helper.make_opsetid("", 18), helper.make_opsetid("com.microsoft", 1)]
    onnx.save(helper.make_model(graph, opset_imports=ops), str(tmp_path / "m.onnx"))
    assert opset_domains(tmp_path / "m.onnx") == {"", "com.microsoft"}


def test_a_file_that_is_not_onnx_is_named(tmp_path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x0b\xff\xff")
    with pytest.raises(BundleError, match=r"bad\.onnx"):
        opset_domains(bad)


@pytest.mark.bundle
def test_real_bundle_graphs_are_plain(real_bundle: Path) -> None:
    for name in ("model.onnx", "model.int8.onnx"):
        assert "com.microsoft" not in opset_domains(real_bundle / name)


# --- engine records ----------------------------------------------------------------------------


def _record(**kw: str) -> EngineRecord:
    base = {
        "file": "model.fp16.nvidia-h100-80gb-hbm3.engine",
        "sha256": "f" * 64,
        "gpu": H100.name,
        "compute_capability": "9.0",
        "tensorrt": "10.13.0",
    }
    return EngineRecord(**{**base, **kw}, profile={"input_ids": [[1, 1], [32, 128], [64, 256]]})


def test_records_round_trip_through_variant_details() -> None:
    rec = _record()
    extra = {**rec.to_json(), "parity": {"min_cosine": 0.9999}}  # extra keys are kept apart
    var = Variant("fp16", "model.fp16.onnx", "float16", (), {"tensorrt_engines": [extra]})
    assert engine_records(var) == [rec]
    assert engine_records(Variant("fp32", "model.onnx", "float32")) == []


def test_bad_record_is_named() -> None:
    var = Variant("fp16", "m.onnx", "float16", (), {"tensorrt_engines": [{"file": "x"}]})
    with pytest.raises(BundleError, match=r"fp16.*sha256"):
        engine_records(var)


def test_match_needs_same_gpu_model_and_tensorrt_version() -> None:
    recs = [_record(gpu="NVIDIA A100-SXM4-80GB"), _record(), _record(tensorrt="10.9.0")]
    assert match_engine(recs, H100, "10.13.0") == recs[1]
    assert match_engine(recs, H100, "10.14.1") is None
    assert match_engine(recs, None, "10.13.0") is None
    assert match_engine(recs, H100, None) is None


def test_mismatch_message_lists_what_there_is_and_what_is_here() -> None:
    msg = describe_mismatch("fp16", [_record(gpu="NVIDIA A100-SXM4-80GB")], H100, "10.13.0")
    assert "A100" in msg and "H100" in msg and "umr export --tensorrt" in msg
    none = describe_mismatch("fp32", [], None, None)
    assert "carries no TensorRT engine" in none and "none found" in none


def test_gpu_slug_is_file_name_safe() -> None:
    assert H100.slug == "nvidia-h100-80gb-hbm3"
    assert GpuInfo("  ", "8.0").slug == "gpu"


# --- on a GPU ------------------------------------------------------------------------------------


def _gpu_missing() -> str:
    missing = [] if gpu_info() is not None else ["a CUDA GPU"]
    if not (importable("tensorrt") and importable("cuda")):
        missing.append("TensorRT (tensorrt and cuda-python: pip install 'umr[gpu]')")
    return " and ".join(missing)


@pytest.mark.skipif(bool(_gpu_missing()), reason=f"needs {_gpu_missing()}")
def test_engine_runner_matches_onnx_runtime(tiny_bundle, tmp_path) -> None:
    """Build an engine of the tiny graph, run it without ORT, compare with ORT CPU."""
    from umr.export.tensorrt_engine import build_engine
    from umr.runtime.embedder import Embedder
    from umr.runtime.trt_engine import TrtEngineRunner
    from umr.runtime.trt_profile import profile_for

    cpu = Embedder.load(tiny_bundle.path, threads=1)
    profile = profile_for(cpu.manifest, opt_batch=2, max_batch=4)
    gpu = gpu_info()
    assert gpu is not None
    engine = tmp_path / "tiny.engine"
    build_engine(tiny_bundle.path / "model.onnx", engine, profile, gpu)
    runner = TrtEngineRunner(engine, cpu.manifest.inputs, cpu.manifest.output)
    assert runner.max_rows == 4
    cpu.max_batch_tokens = None
    texts = ["the python list", "a", "text query of it", "the", "list of the text"]
    want = cpu.embed_text(texts)
    cpu._run, cpu._max_rows = runner, runner.max_rows
    np.testing.assert_allclose(cpu.embed_text(texts), want, atol=1e-4)
    runner.close()
