"""``umr export --tensorrt`` without a GPU: the refusal, and the build steps against a fake
``tensorrt`` module (TensorRT cannot build or parse anything without a CUDA device).

The fake records what the builder is asked for (network flags, profile shapes, the ONNX
it parses), so the calls are checked; whether TensorRT accepts them is only checked on a
GPU (tests/runtime/test_gpu_engine.py, skipped here).
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from umr.export import tensorrt_engine as te
from umr.runtime.gpu_env import GpuInfo
from umr.runtime.trt_profile import build_profile

from umr.errors import ProviderUnavailableError

H100 = GpuInfo("NVIDIA H100 80GB HBM3", "9.0")


def test_build_is_refused_here_naming_what_is_missing(monkeypatch) -> None:
    monkeypatch.setattr(te, "gpu_info", lambda device_id=0: None)
    monkeypatch.setattr(te, "importable", lambda name: False)
    with pytest.raises(ProviderUnavailableError) as err:
        te.require_engine_build()
    msg = str(err.value)
    assert "the tensorrt package" in msg and "the cuda-python package" in msg
    assert "a CUDA GPU" in msg and "pip install 'umr[gpu]'" in msg


def test_build_is_allowed_with_packages_and_a_gpu(monkeypatch) -> None:
    monkeypatch.setattr(te, "gpu_info", lambda device_id=0: H100)
    monkeypatch.setattr(te, "importable", lambda name: True)
    assert te.require_engine_build() == H100


def test_export_bundle_fails_fast_before_touching_the_source(monkeypatch, tmp_path) -> None:
    from umr.export import export_bundle

    monkeypatch.setattr(te, "gpu_info", lambda device_id=0: None)
    with pytest.raises(ProviderUnavailableError, match="a CUDA GPU"):
        export_bundle(tmp_path / "out", tmp_path / "no-such-model", tensorrt=True)
    assert not (tmp_path / "out").exists()


def test_cli_export_tensorrt_exits_1_with_the_reason(monkeypatch, tmp_path, capsys) -> None:
    from umr.runtime.cli.main import main

    monkeypatch.setattr(te, "gpu_info", lambda device_id=0: None)
    code = main(["export", "--out", str(tmp_path / "b"), "--tensorrt", "--quiet"])
    assert code == 1 and "a CUDA GPU" in capsys.readouterr().err


def test_engine_file_name_is_per_gpu_model() -> None:
    assert te.engine_file_name("model.fp16.onnx", H100) == "model.fp16.nvidia-h100-80gb-hbm3.engine"


# --- the build, against a fake tensorrt ---------------------------------------------------------


class _FakeTrt(types.ModuleType):
    """The slice of the tensorrt 10 Python API build_engine uses, recording its calls."""

    __version__ = "10.13.0"

    def __init__(self, strongly_typed: bool = True) -> None:
        super().__init__("tensorrt")
        self.calls: dict[str, object] = {}
        fake = self

        class Flags:
            pass

        if strongly_typed:
            Flags.STRONGLY_TYPED = 5  # type: ignore[attr-defined]

        class Network:
            def __init__(self, flags: int) -> None:
                fake.calls["flags"], self.inputs = flags, []

            @property
            def num_inputs(self) -> int:
                return len(self.inputs)

            def get_input(self, i: int) -> types.SimpleNamespace:
                return types.SimpleNamespace(name=self.inputs[i])

        class Parser:
            def __init__(self, network: Network, logger: object) -> None:
                self.network, self.num_errors = network, 0

            def parse_from_file(self, path: str) -> bool:
                model = onnx.load(path)
                fake.calls["parsed_functions"] = len(model.functions)
                self.network.inputs = [i.name for i in model.graph.input]
                return True

        class Config:
            def set_memory_pool_limit(self, pool: int, size: int) -> None:
                fake.calls["workspace"] = size

            def add_optimization_profile(self, profile: object) -> None:
                fake.calls["profile"] = profile.shapes  # type: ignore[attr-defined]

            def create_timing_cache(self, data: bytes) -> types.SimpleNamespace:
                fake.calls["timing_in"] = data
                return types.SimpleNamespace(serialize=lambda: b"TIMING")

            def set_timing_cache(self, cache: object, ignore_mismatch: bool) -> None:
                pass

        class Profile:
            def __init__(self) -> None:
                self.shapes: dict[str, tuple] = {}

            def set_shape(self, name: str, mn: tuple, opt: tuple, mx: tuple) -> None:
                self.shapes[name] = (tuple(mn), tuple(opt), tuple(mx))

        class Builder:
            def __init__(self, logger: object) -> None:
                pass

            def create_network(self, flags: int) -> Network:
                return Network(flags)

            def create_builder_config(self) -> Config:
                return Config()

            def create_optimization_profile(self) -> Profile:
                return Profile()

            def build_serialized_network(self, network: Network, config: Config) -> bytes:
                return b"ENGINE"

        self.Logger = type("Logger", (), {"WARNING": 2, "__init__": lambda s, level: None})
        self.NetworkDefinitionCreationFlag = Flags
        self.MemoryPoolType = types.SimpleNamespace(WORKSPACE=0)
        self.Builder, self.OnnxParser = Builder, Parser


def _graph_with_function(path: Path, extra_domain: str = "") -> Path:
    fn = helper.make_function(
        "ai.umr",
        "Pool",
        ["h"],
        ["y"],
        [helper.make_node("ReduceMean", ["h"], ["y"], keepdims=0, axes=[1])],
        [helper.make_opsetid("", 17)],
    )
    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["E", "input_ids"], ["h"]),
            helper.make_node("Pool", ["h"], ["sentence_embedding"], domain="ai.umr"),
        ],
        "g",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"])],
        [helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["batch", 4])],
        [numpy_helper.from_array(np.ones((10, 4), np.float32), "E")],
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("ai.umr", 1)]
    if extra_domain:
        opsets.append(helper.make_opsetid(extra_domain, 1))
    model = helper.make_model(graph, functions=[fn], opset_imports=opsets)
    model.ir_version = 10
    onnx.save(model, str(path))
    return path


@pytest.fixture
def fake_trt(monkeypatch, tmp_path) -> _FakeTrt:
    fake = _FakeTrt()
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    monkeypatch.setenv("UMR_CACHE_DIR", str(tmp_path / "cache"))
    return fake


def test_build_engine_asks_for_a_strongly_typed_network_and_the_profile(fake_trt, tmp_path) -> None:
    onnx_path = _graph_with_function(tmp_path / "model.fp16.onnx")
    profile = build_profile(["input_ids"], {"input_ids": ("batch", "seq")}, 256)
    rec = te.build_engine(onnx_path, tmp_path / "x.engine", profile, H100)
    assert fake_trt.calls["flags"] == 1 << 5  # STRONGLY_TYPED, nothing else
    assert fake_trt.calls["profile"] == {"input_ids": ((1, 1), (32, 128), (64, 256))}
    assert fake_trt.calls["parsed_functions"] == 0  # model-local functions were inlined
    assert fake_trt.calls["workspace"] == te.WORKSPACE_BYTES
    assert (tmp_path / "x.engine").read_bytes() == b"ENGINE"
    assert (rec.gpu, rec.compute_capability, rec.tensorrt) == (H100.name, "9.0", "10.13.0")
    assert rec.profile == profile.to_json() and len(rec.sha256) == 64
    timing = tmp_path / "cache" / "tensorrt" / "timing" / f"{H100.slug}-trt10.13.0.cache"
    assert timing.read_bytes() == b"TIMING"
    te.build_engine(onnx_path, tmp_path / "y.engine", profile, H100)
    assert fake_trt.calls["timing_in"] == b"TIMING"  # the second build reuses the timings


def test_tensorrt_without_the_strongly_typed_flag_gets_no_flags(monkeypatch, tmp_path) -> None:
    fake = _FakeTrt(strongly_typed=False)
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    monkeypatch.setenv("UMR_CACHE_DIR", str(tmp_path))
    profile = build_profile(["input_ids"], {}, 16)
    te.build_engine(_graph_with_function(tmp_path / "m.onnx"), tmp_path / "e", profile, H100)
    assert fake.calls["flags"] == 0


def test_build_engine_refuses_ort_only_ops_before_building(fake_trt, tmp_path) -> None:
    path = _graph_with_function(tmp_path / "m.onnx", extra_domain="com.microsoft")
    profile = build_profile(["input_ids"], {}, 16)
    with pytest.raises(ProviderUnavailableError, match=r"com\.microsoft"):
        te.build_engine(path, tmp_path / "e", profile, H100)
    assert "flags" not in fake_trt.calls


# --- adding the engine to a bundle being exported -----------------------------------------------


@pytest.fixture
def staged(tiny_bundle, monkeypatch):  # type: ignore[no-untyped-def]
    """A stage with the tiny bundle's graph as 'fp16', and build/check stubbed out."""
    from umr.bundle import Variant

    monkeypatch.setattr(te, "require_engine_build", lambda device_id=0: H100)

    def fake_build(onnx_path, engine_path, profile, gpu, **kw):  # type: ignore[no-untyped-def]
        engine_path.write_bytes(b"ENGINE")
        return te.EngineRecord(
            engine_path.name, "e" * 64, gpu.name, "9.0", "10.13.0", profile.to_json()
        )

    monkeypatch.setattr(te, "build_engine", fake_build)
    fp16 = Variant("fp16", "model.onnx", "float16", (), {"io_dtype": "float32"})
    profile = build_profile(list(tiny_bundle.inputs), {}, 16)
    return tiny_bundle.path, fp16, profile


def test_add_engine_lists_the_engine_with_its_gpu_parity(staged, monkeypatch) -> None:
    stage, fp16, profile = staged
    seen = {}

    def fake_check(path, inputs, output, feeds, expected):  # type: ignore[no-untyped-def]
        seen["rows"] = sum(len(f["input_ids"]) for f in feeds)
        seen["inputs"] = inputs
        return np.full(len(expected), 0.99995)

    monkeypatch.setattr(te, "check_engine", fake_check)
    texts = ["the list", "a text", "python"]
    out = te.add_engine(
        stage,
        fp16,
        profile,
        "sentence_embedding",
        stage / "tokenizer.json",
        texts,
        np.ones((3, 8), np.float32),
        0.999,
    )
    (entry,) = out.details["tensorrt_engines"]
    assert entry["file"] == "model.nvidia-h100-80gb-hbm3.engine" and entry["onnx"] == "model.onnx"
    assert entry["parity"] == {
        "reference": "fp32",
        "n_texts": 3,
        "min_cosine": 0.99995,
        "mean_cosine": 0.99995,
        "gate": 0.999,
    }
    assert entry["strongly_typed"] is True and out.details["io_dtype"] == "float32"
    assert seen == {"rows": 3, "inputs": list(profile.to_json())}


def test_add_engine_under_the_gate_is_removed_and_raises(staged, monkeypatch) -> None:
    from umr.errors import ExportError

    stage, fp16, profile = staged
    monkeypatch.setattr(te, "check_engine", lambda *a: np.array([0.9999, 0.98]))
    with pytest.raises(ExportError, match=r"0\.980000 < gate 0\.999"):
        te.add_engine(
            stage,
            fp16,
            profile,
            "sentence_embedding",
            stage / "tokenizer.json",
            ["a", "b"],
            np.ones((2, 8), np.float32),
            0.999,
        )
    assert not list(stage.glob("*.engine"))


# --- a multimodal bundle: an engine of the fused text+image graph as well ------------------------

FUSED_INPUTS = ("input_ids", "attention_mask", "pool_mask", "pixel_values")


def _fused_graph(path: Path, size: int = 8) -> Path:
    """A plain graph with the fused graph's inputs (the fake parser only reads them)."""
    text = [
        helper.make_tensor_value_info(n, TensorProto.INT64, ["batch_size", "sequence_length"])
        for n in FUSED_INPUTS[:3]
    ]
    pixels = helper.make_tensor_value_info(
        "pixel_values", TensorProto.FLOAT, ["batch_size", 3, size, size]
    )
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["pixel_values"], ["sentence_embedding"])],
        "fused",
        [*text, pixels],
        [helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["batch", None])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10
    onnx.save(model, str(path))
    return path


def _image_input(size: int = 8):  # type: ignore[no-untyped-def]
    from umr.bundle import ImageInput
    from umr.images import ImagePreprocess

    seq = ("batch_size", "sequence_length")
    dims = {**{n: seq for n in FUSED_INPUTS[:3]}, "pixel_values": ("batch_size", 3, size, size)}
    return ImageInput(ImagePreprocess(size=size), FUSED_INPUTS, 2, input_dims=dims)


def test_fused_graph_engine_gets_text_ranges_and_a_fixed_pixel_shape(fake_trt, tmp_path) -> None:
    from umr.runtime.trt_profile import image_profile

    profile = image_profile(_image_input(), 16)
    path = _fused_graph(tmp_path / "multimodal.fp16.onnx")
    rec = te.build_engine(path, tmp_path / "f.engine", profile, H100)
    text = ((1, 1), (32, 16), (64, 16))
    assert fake_trt.calls["profile"] == {
        "input_ids": text,
        "attention_mask": text,
        "pool_mask": text,
        "pixel_values": ((1, 3, 8, 8), (32, 3, 8, 8), (64, 3, 8, 8)),
    }
    assert fake_trt.calls["flags"] == 1 << 5
    assert rec.profile["pixel_values"] == [[1, 3, 8, 8], [32, 3, 8, 8], [64, 3, 8, 8]]


def test_a_text_profile_on_the_fused_graph_is_refused(fake_trt, tmp_path) -> None:
    from umr.errors import ExportError

    profile = build_profile(["input_ids", "attention_mask", "pool_mask"], {}, 16)
    with pytest.raises(ExportError, match=r"network inputs .*pixel_values.* differ"):
        te.build_engine(_fused_graph(tmp_path / "m.onnx"), tmp_path / "e", profile, H100)


def test_fused_engines_are_listed_under_the_fused_graph() -> None:
    from umr.bundle import Variant

    fp16 = Variant("fp16", "model.fp16.onnx", "float16", (), {"fused_graph": {"x": 1}}, "mm.onnx")
    both = te.with_engine(te.with_engine(fp16, {"file": "t"}), {"file": "f"}, fused=True)
    assert both.details["tensorrt_engines"] == [{"file": "t"}]
    assert both.details["fused_graph"] == {"x": 1, "tensorrt_engines": [{"file": "f"}]}
    assert both.image_file == "mm.onnx" and fp16.details == {"fused_graph": {"x": 1}}
    bare = te.with_engine(
        Variant("fp16", "m.onnx", "float16", image_file="mm.onnx"), {}, fused=True
    )
    assert bare.details == {"fused_graph": {"tensorrt_engines": [{}]}}


def test_add_engines_checks_each_graph_on_its_kinds(monkeypatch, tmp_path) -> None:
    """Feeds and fp32 vectors kind after kind; per-kind parity; text then fused engine."""
    from umr.export.multimodal_engines import add_engines
    from umr.runtime.trt_profile import image_profile

    from umr.bundle import Variant

    monkeypatch.setattr(te, "require_engine_build", lambda device_id=0: H100)
    items = {"text": ["t"] * 3, "image": ["i"] * 2, "text+image": ["p"] * 4}
    fp32 = {k: np.full((len(v), 2), i + 1.0, np.float32) for i, (k, v) in enumerate(items.items())}
    feeder = types.SimpleNamespace(
        batches=lambda sides, size: iter([{"rows": np.array(sides)}])  # one batch per kind
    )
    graphs = {"text": "model.fp16.onnx", "fused": "multimodal.fp16.onnx"}
    run = types.SimpleNamespace(
        stage=tmp_path,
        items=items,
        fp32=fp32,
        feeder=feeder,
        graph=lambda w, v: tmp_path / graphs[w],
    )
    seen = []

    def fake_checked(stage, onnx_file, profile, output, feeds, expected, gate, gpu):  # type: ignore[no-untyped-def]
        rows = "".join(r for f in feeds for r in f["rows"])
        seen.append((onnx_file, [n for n, *_ in profile.shapes], rows, expected[:, 0].tolist()))
        cos = np.linspace(0.9995, 1.0, len(expected))
        return {"file": onnx_file + ".engine", "onnx": onnx_file}, cos

    monkeypatch.setattr(te, "checked_engine", fake_checked)
    profiles = {
        "text": build_profile(["input_ids", "pool_mask"], {}, 16),
        "fused": image_profile(_image_input(), 16),
    }
    fp16 = Variant("fp16", graphs["text"], "float16", (), {"fused_graph": {}}, graphs["fused"])
    out = add_engines(run, fp16, profiles, "sentence_embedding", 0.999)  # type: ignore[arg-type]
    assert seen == [
        ("model.fp16.onnx", ["input_ids", "pool_mask"], "ttt", [1.0] * 3),
        ("multimodal.fp16.onnx", list(FUSED_INPUTS), "iipppp", [2.0] * 2 + [3.0] * 4),
    ]
    (text,) = out.details["tensorrt_engines"]
    (fused,) = out.details["fused_graph"]["tensorrt_engines"]
    assert text["onnx"] == "model.fp16.onnx" and fused["onnx"] == "multimodal.fp16.onnx"
    assert list(text["parity"]["by_kind"]) == ["text"]
    by_kind = fused["parity"]["by_kind"]
    assert [p["reference"] for p in by_kind.values()] == ["fp32:image", "fp32:text+image"]
    assert [p["n_texts"] for p in by_kind.values()] == [2, 4] and fused["parity"]["n_texts"] == 6
    assert (
        by_kind["image"]["min_cosine"] == 0.9995 and by_kind["text+image"]["mean_cosine"] > 0.9998
    )
    assert fused["parity"]["gate"] == 0.999 and fused["parity"]["reference"] == "fp32"


def test_add_engines_needs_the_fp16_variant(monkeypatch) -> None:
    from umr.export.multimodal_engines import add_engines

    from umr.errors import ExportError

    with pytest.raises(ExportError, match="fp16 variant, which failed"):
        add_engines(None, None, {}, "sentence_embedding", 0.999)  # type: ignore[arg-type]
