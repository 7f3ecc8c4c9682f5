"""The ONNX pooling subgraph against the NumPy reference, on a tiny identity graph (no torch)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper
from umr.kernels.onnx_pooling import PoolingSpec, append_pooling
from umr.kernels.reference import pool

from umr.errors import ExportError


def _identity_model(dim: int, opset: int) -> onnx.ModelProto:
    """inputs hidden [b, s, dim] + attention_mask; output last_hidden_state = hidden."""
    hidden = helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["b", "s", dim])
    attn = helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["b", "s"])
    out = helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["b", "s", dim])
    node = helper.make_node("Identity", ["hidden"], ["last_hidden_state"])
    graph = helper.make_graph([node], "identity", [hidden, attn], [out])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=10)


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    onnx.checker.check_model(model, full_check=True)
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _masks(rng: np.random.Generator, batch: int, seq: int) -> tuple[np.ndarray, np.ndarray]:
    lengths = rng.integers(1, seq + 1, size=batch)
    attn = (np.arange(seq)[None, :] < lengths[:, None]).astype(np.int64)
    pool_mask = attn.copy()
    pool_mask[:, : min(2, seq - 1)] = 0  # an instruction prefix kept out of the pool
    pool_mask[0] = 0  # an all-zero row must give zeros, not NaN
    return attn, pool_mask


CASES = [(b, s, d) for b, s, d in [(1, 1, 4), (1, 7, 5), (3, 5, 8), (4, 13, 3), (2, 33, 17)]]


@pytest.mark.parametrize("as_function", [True, False])
@pytest.mark.parametrize("opset", [14, 18])
@pytest.mark.parametrize("mode", ["mean", "cls", "last"])
@pytest.mark.parametrize("normalize", [True, False])
def test_subgraph_matches_reference(mode, normalize, opset, as_function):
    rng = np.random.default_rng(0)
    spec = PoolingSpec(mode=mode, normalize=normalize)
    sess = _session(append_pooling(_identity_model(8, opset), spec, as_function=as_function))
    assert [o.name for o in sess.get_outputs()] == ["sentence_embedding"]
    assert [i.name for i in sess.get_inputs()] == ["hidden", "attention_mask", "pool_mask"]
    for batch, seq, _ in CASES:
        hidden = rng.standard_normal((batch, seq, 8)).astype(np.float32)
        attn, pmask = _masks(rng, batch, seq)
        got = sess.run(None, {"hidden": hidden, "attention_mask": attn, "pool_mask": pmask})[0]
        want = pool(hidden, attn, pmask, mode, normalize)
        assert got.shape == (batch, 8)
        assert np.isfinite(got).all()
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_all_zero_pool_mask_gives_zeros():
    sess = _session(append_pooling(_identity_model(4, 18), PoolingSpec("mean")))
    hidden = np.ones((2, 3, 4), np.float32)
    attn = np.ones((2, 3), np.int64)
    pmask = np.array([[0, 0, 0], [1, 1, 0]], np.int64)
    got = sess.run(None, {"hidden": hidden, "attention_mask": attn, "pool_mask": pmask})[0]
    np.testing.assert_array_equal(got[0], 0.0)
    np.testing.assert_allclose(got[1], 0.5, rtol=1e-6)


def test_last_token_with_left_padding():
    sess = _session(append_pooling(_identity_model(2, 18), PoolingSpec("last", normalize=False)))
    hidden = np.arange(12, dtype=np.float32).reshape(2, 3, 2)
    attn = np.array([[0, 1, 1], [1, 1, 0]], np.int64)
    got = sess.run(None, {"hidden": hidden, "attention_mask": attn, "pool_mask": attn})[0]
    np.testing.assert_array_equal(got, [[4.0, 5.0], [8.0, 9.0]])


def test_bad_mode_and_missing_value_are_named():
    with pytest.raises(ExportError, match="'max'"):
        PoolingSpec(mode="max")
    with pytest.raises(ExportError, match="'nope'"):
        append_pooling(_identity_model(4, 18), PoolingSpec(hidden="nope"))
    with pytest.raises(ExportError, match="opset 12"):
        append_pooling(_identity_model(4, 12), PoolingSpec(), as_function=False)


def test_function_packaging_keeps_one_node():
    model = append_pooling(_identity_model(4, 18), PoolingSpec("mean"))
    assert [n.op_type for n in model.graph.node] == ["Identity", "MeanPoolL2"]
    assert [f.name for f in model.functions] == ["MeanPoolL2"]
