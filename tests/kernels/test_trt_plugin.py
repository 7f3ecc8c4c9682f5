"""The TensorRT plugin module: what runs without TensorRT, a fake ``tensorrt.plugin`` that
checks the decorated signatures the way the real one does, and (skipped here) an engine."""

from __future__ import annotations

import importlib.util
import inspect
import sys
import types
import typing

import numpy as np
import pytest
from umr.kernels import trt_plugin
from umr.kernels.reference import pool

from umr.errors import InputTypeError, InputValueError, ProviderUnavailableError


@pytest.fixture
def fresh(monkeypatch):
    """The module as if ``register()`` had never run."""
    monkeypatch.setattr(trt_plugin, "_registered", False)
    return trt_plugin


def test_register_without_tensorrt_is_a_provider_error(fresh, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    monkeypatch.setitem(sys.modules, "tensorrt.plugin", None)
    with pytest.raises(ProviderUnavailableError, match=r"umr::pool .*TensorRT >= 10.7"):
        fresh.register()
    assert not fresh._registered


@pytest.mark.parametrize(
    ("attrs", "error", "match"),
    [
        (("max", 1, 0), InputValueError, "mode: 'max'"),
        (("mean", 2, 0), InputValueError, "normalize: 2"),
        (("mean", True, 0), InputValueError, "normalize: True"),
        (("mean", 1, -1), InputValueError, "truncate_dim: -1 < 0"),
        (("mean", 1, 2.0), InputTypeError, "truncate_dim: expected an int"),
    ],
)
def test_bad_attributes_are_named(attrs, error, match):
    with pytest.raises(error, match=match):
        trt_plugin.check_attrs(*attrs)


def test_shape_logic():
    assert trt_plugin.output_width(384, 0) == 384
    assert trt_plugin.output_width(None, 0) is None
    assert trt_plugin.output_width(384, 128) == 128
    assert trt_plugin.output_width(None, 128) == 128
    with pytest.raises(InputValueError, match=r"not in \[1, 384\]"):
        trt_plugin.output_width(384, 512)
    assert trt_plugin.kept_dim(384, 0) is None
    assert trt_plugin.kept_dim(384, 64) == 64


def test_io_types_cover_three_inputs_and_one_output():
    hidden, attn, pmask, out = (s.strip() for s in trt_plugin.IO_TYPES.split(","))
    assert hidden.split("*") == ["FP32", "FP16", "BF16"]
    assert attn == pmask == "INT32|INT64"  # dependent: both masks share one int type
    assert out == "FP32"


def test_plugin_node_for_the_onnx_parser():
    pytest.importorskip("onnx")
    node = trt_plugin.plugin_node(("h", "a", "p"), "emb", "last", 1, 256)
    assert node.op_type == "pool" and list(node.input) == ["h", "a", "p"]
    attrs = {a.name: a for a in node.attribute}
    assert attrs["plugin_namespace"].s == b"umr"
    assert attrs["mode"].s == b"last"
    assert (attrs["normalize"].i, attrs["truncate_dim"].i) == (1, 256)
    with pytest.raises(InputValueError):
        trt_plugin.plugin_node(("h", "a", "p"), "emb", mode="max")


# --- a fake tensorrt.plugin: records the decorated functions, validates like the real one ---


class _TensorDesc:
    def __init__(self, shape_expr=None, dtype=None):
        self.shape_expr, self.dtype = shape_expr, dtype


class _Tensor:
    pass


class _AutoTuneCombination:
    def __init__(self, io_types, layouts="LINEAR"):
        self.io_types, self.layouts = io_types, layouts


def _fake_tensorrt():
    trt = types.ModuleType("tensorrt")
    trt.float32 = "float32"
    trt.DataType = types.SimpleNamespace(BF16="bf16")
    trtp = types.ModuleType("tensorrt.plugin")
    trtp.TensorDesc, trtp.Tensor = _TensorDesc, _Tensor
    trtp.AutoTuneCombination = _AutoTuneCombination
    trtp.recorded = {}

    def decorator(kind):
        def outer(plugin_id):
            def inner(fn):
                for p in inspect.signature(fn).parameters.values():
                    # The real module calls issubclass() on annotations: strings would fail.
                    assert not isinstance(p.annotation, str), f"{kind}: {p.name} is a string"
                trtp.recorded[kind] = (plugin_id, fn)
                return fn

            return inner

        return outer

    for kind in ("register", "autotune", "impl"):
        setattr(trtp, kind, decorator(kind))
    trtp.from_shape_expr = lambda shape, dtype: _TensorDesc(tuple(shape), dtype)
    trt.plugin = trtp
    return trt, trtp


@pytest.fixture
def fake(fresh, monkeypatch):
    trt, trtp = _fake_tensorrt()
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setitem(sys.modules, "tensorrt.plugin", trtp)
    fresh.register()
    return trtp


def _params(fn) -> list[str]:
    return list(inspect.signature(fn).parameters)


def test_register_declares_the_three_functions_once(fake, fresh):
    assert {k: v[0] for k, v in fake.recorded.items()} == dict.fromkeys(
        ("register", "autotune", "impl"), "umr::pool"
    )
    fake.recorded.clear()
    fresh.register()  # idempotent: a second call registers nothing again
    assert fake.recorded == {}


def test_signatures_follow_the_qdp_schema(fake):
    inputs = ["hidden", "attention_mask", "pool_mask"]
    attrs = ["mode", "normalize", "truncate_dim"]
    desc = fake.recorded["register"][1]
    assert _params(desc) == inputs + attrs
    hints = typing.get_type_hints(desc)
    assert [hints[n] for n in attrs] == [str, int, int]  # serialisable attribute types
    assert all(hints[n] is _TensorDesc for n in inputs) and hints["return"] is _TensorDesc
    assert _params(fake.recorded["autotune"][1]) == [*inputs, "outputs"]
    assert _params(fake.recorded["impl"][1]) == [*inputs, *attrs, "outputs", "stream"]


def test_described_output_is_fp32_batch_by_width(fake):
    desc = fake.recorded["register"][1]
    hidden = _TensorDesc(("B", "S", "H"))
    mask = _TensorDesc(("B", "S"))
    out = desc(hidden, mask, mask, "mean", 1, 0)
    assert (out.shape_expr, out.dtype) == (("B", "H"), "float32")
    assert desc(hidden, mask, mask, "last", 0, 64).shape_expr == ("B", 64)
    with pytest.raises(InputValueError):
        desc(hidden, mask, mask, "max", 1, 0)
    (combo,) = fake.recorded["autotune"][1](hidden, mask, mask, (out,))
    assert (combo.io_types, combo.layouts) == (trt_plugin.IO_TYPES, "LINEAR")


# --- a real engine: only where TensorRT and a GPU are ---


def _trt_and_gpu() -> bool:
    if importlib.util.find_spec("tensorrt") is None or importlib.util.find_spec("torch") is None:
        return False
    import torch

    return torch.cuda.is_available()


@pytest.mark.skipif(not _trt_and_gpu(), reason="needs TensorRT and a CUDA GPU")
@pytest.mark.parametrize(("mode", "truncate_dim"), [("mean", 0), ("last", 5)])
def test_engine_matches_reference(mode, truncate_dim):
    import tensorrt as trt
    import tensorrt.plugin as trtp
    import torch

    trt_plugin.register()
    rng = np.random.default_rng(0)
    hidden = rng.standard_normal((3, 7, 16)).astype(np.float32)
    attn = np.array([[1] * 7, [1] * 4 + [0] * 3, [0] * 7], np.int64)
    pm = attn.copy()
    pm[:, 0] = 0

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    h_in = network.add_input("hidden", trt.float32, hidden.shape)
    a_in = network.add_input("attention_mask", trt.int64, attn.shape)
    p_in = network.add_input("pool_mask", trt.int64, pm.shape)
    op = trtp.op.umr.pool(h_in, a_in, p_in, mode=mode, normalize=1, truncate_dim=truncate_dim)
    layer = network.add_plugin(op)
    layer.get_output(0).name = "embedding"
    network.mark_output(layer.get_output(0))
    blob = builder.build_serialized_network(network, builder.create_builder_config())
    engine = trt.Runtime(logger).deserialize_cuda_engine(blob)
    context = engine.create_execution_context()

    width = truncate_dim or hidden.shape[2]
    tensors = {
        "hidden": torch.from_numpy(hidden).cuda(),
        "attention_mask": torch.from_numpy(attn).cuda(),
        "pool_mask": torch.from_numpy(pm).cuda(),
        "embedding": torch.empty((3, width), device="cuda"),
    }
    for name, t in tensors.items():
        context.set_tensor_address(name, t.data_ptr())
    stream = torch.cuda.current_stream()
    assert context.execute_async_v3(stream.cuda_stream)
    stream.synchronize()
    want = pool(hidden, attn, pm, mode, True, truncate_dim or None)
    np.testing.assert_allclose(tensors["embedding"].cpu().numpy(), want, rtol=1e-5, atol=1e-6)
