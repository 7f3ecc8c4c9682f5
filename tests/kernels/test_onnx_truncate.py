"""Matryoshka truncation in the ONNX pooling function and the NumPy reference (no torch)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper
from umr.kernels.onnx_pooling import PoolingSpec, append_pooling
from umr.kernels.reference import check_truncate_dim, pool

from umr.errors import ExportError, InputTypeError, InputValueError


def _identity_model(dim: int | str, opset: int = 18) -> onnx.ModelProto:
    """inputs hidden [b, s, dim] + attention_mask; output last_hidden_state = hidden."""
    hidden = helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["b", "s", dim])
    attn = helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["b", "s"])
    out = helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["b", "s", dim])
    node = helper.make_node("Identity", ["hidden"], ["last_hidden_state"])
    graph = helper.make_graph([node], "identity", [hidden, attn], [out])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=10)


def _run(model: onnx.ModelProto, hidden: np.ndarray, attn: np.ndarray, pm: np.ndarray):
    onnx.checker.check_model(model, full_check=True)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"hidden": hidden, "attention_mask": attn, "pool_mask": pm})[0]


def _inputs(seed: int, batch: int, seq: int, dim: int):
    """Right-padded rows of random length, a 2-token instruction prefix out of the pool, and
    row 0's pool_mask all zero (it must pool to zeros, never NaN)."""
    rng = np.random.default_rng(seed)
    hidden = rng.standard_normal((batch, seq, dim)).astype(np.float32)
    lengths = rng.integers(1, seq + 1, size=batch)
    attn = (np.arange(seq)[None, :] < lengths[:, None]).astype(np.int64)
    pm = attn.copy()
    pm[:, : min(2, seq - 1)] = 0
    pm[0] = 0
    return hidden, attn, pm


# (batch, seq, dim, truncate_dim): batch 1, seq 1, odd sizes, keep-all and keep-one.
CASES = [(1, 1, 4, 1), (1, 1, 4, 4), (1, 7, 5, 2), (3, 5, 8, 3), (4, 13, 17, 7), (2, 33, 17, 16)]


@pytest.mark.parametrize("as_function", [True, False])
@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("mode", ["mean", "cls", "last"])
@pytest.mark.parametrize(("batch", "seq", "dim", "keep"), CASES)
def test_truncated_subgraph_matches_reference(batch, seq, dim, keep, mode, normalize, as_function):
    spec = PoolingSpec(mode=mode, normalize=normalize, truncate_dim=keep)
    model = append_pooling(_identity_model(dim), spec, as_function=as_function)
    hidden, attn, pm = _inputs(batch * 100 + seq, batch, seq, dim)
    got = _run(model, hidden, attn, pm)
    want = pool(hidden, attn, pm, mode, normalize, truncate_dim=keep)
    assert got.shape == (batch, keep)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_truncation_comes_before_the_l2():
    hidden, attn, pm = _inputs(3, 4, 9, 12)
    pm[0] = 1  # every row pools to something nonzero
    got = _run(append_pooling(_identity_model(12), PoolingSpec(truncate_dim=5)), hidden, attn, pm)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, rtol=1e-5)
    full = pool(hidden, attn, pm, "mean", normalize=True)
    assert not np.allclose(got, full[:, :5], atol=1e-3)  # normalise-then-cut is not unit norm
    cut = full[:, :5] / np.linalg.norm(full[:, :5], axis=1)[:, None]
    np.testing.assert_allclose(got, cut, rtol=1e-5, atol=1e-6)


def test_empty_pool_mask_row_gives_zeros_when_truncated():
    hidden = np.ones((2, 3, 6), np.float32)
    attn = np.ones((2, 3), np.int64)
    pm = np.array([[0, 0, 0], [1, 1, 0]], np.int64)
    got = _run(append_pooling(_identity_model(6), PoolingSpec(truncate_dim=4)), hidden, attn, pm)
    np.testing.assert_array_equal(got[0], 0.0)
    np.testing.assert_allclose(got[1], 0.5, rtol=1e-6)


def test_truncation_is_one_function_with_its_width_in_the_name():
    model = append_pooling(_identity_model(8), PoolingSpec("mean", truncate_dim=3))
    assert [n.op_type for n in model.graph.node] == ["Identity", "MeanPoolTrunc3L2"]
    (fn,) = model.functions
    assert "Slice" in [n.op_type for n in fn.node]
    dims = model.graph.output[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["b", 3]
    assert (
        PoolingSpec("last", normalize=False, truncate_dim=64).function_name
        == "LastTokenPoolTrunc64"
    )


def test_no_truncation_keeps_the_old_graph():
    spec = PoolingSpec("mean", True)  # positional construction still works
    assert spec.truncate_dim is None and spec.function_name == "MeanPoolL2"
    model = append_pooling(_identity_model(8), spec)
    assert "Slice" not in [n.op_type for n in model.functions[0].node]
    dims = model.graph.output[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["b", 8]


def test_symbolic_hidden_dim_declares_the_truncated_width():
    model = append_pooling(_identity_model("d"), PoolingSpec(truncate_dim=2))
    dims = model.graph.output[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["b", 2]
    hidden, attn, pm = _inputs(0, 2, 4, 5)
    got = _run(model, hidden, attn, pm)
    np.testing.assert_allclose(got, pool(hidden, attn, pm, "mean", truncate_dim=2), atol=1e-6)


@pytest.mark.parametrize("bad", [0, -3, True, 2.5, "8"])
def test_bad_truncate_dim_is_an_export_error(bad):
    with pytest.raises(ExportError, match="truncate_dim"):
        PoolingSpec(truncate_dim=bad)


def test_truncate_wider_than_hidden_is_named():
    with pytest.raises(ExportError, match="truncate_dim 9 > hidden dim 8"):
        append_pooling(_identity_model(8), PoolingSpec(truncate_dim=9))


def test_reference_truncate_checks():
    assert check_truncate_dim(None, 7) == 7
    assert check_truncate_dim(np.int64(3), 7) == 3
    with pytest.raises(InputTypeError, match="truncate_dim"):
        check_truncate_dim(True, 7)
    with pytest.raises(InputTypeError, match="truncate_dim"):
        check_truncate_dim(2.0, 7)  # type: ignore[arg-type]
    for bad in (0, 8):
        with pytest.raises(InputValueError, match=r"not in \[1, 7\]"):
            check_truncate_dim(bad, 7)
    hidden, attn, pm = _inputs(1, 2, 3, 7)
    with pytest.raises(InputValueError, match="truncate_dim"):
        pool(hidden, attn, pm, "mean", truncate_dim=8)
