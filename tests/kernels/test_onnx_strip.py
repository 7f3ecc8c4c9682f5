"""strip_pooling undoes append_pooling: token states out again, on the same graph (no torch)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper
from umr.kernels.onnx_pooling import FUNCTION_DOMAIN, PoolingSpec, append_pooling, strip_pooling

from umr.errors import ExportError


def _scaled_model(dim: int) -> onnx.ModelProto:
    """hidden [b, s, dim] + attention_mask -> last_hidden_state = 2 * hidden."""
    hidden = helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["b", "s", dim])
    attn = helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["b", "s"])
    out = helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["b", "s", dim])
    two = helper.make_node("Constant", [], ["two"], value_float=2.0)
    node = helper.make_node("Mul", ["hidden", "two"], ["last_hidden_state"])
    graph = helper.make_graph([two, node], "scaled", [hidden, attn], [out])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)


@pytest.mark.parametrize("as_function", [True, False])
@pytest.mark.parametrize("truncate_dim", [None, 3])
def test_strip_gives_the_token_states_back(as_function, truncate_dim):
    pooled = append_pooling(
        _scaled_model(5), PoolingSpec(truncate_dim=truncate_dim), as_function=as_function
    )
    model = strip_pooling(pooled)
    onnx.checker.check_model(model, full_check=True)
    assert not model.functions
    assert FUNCTION_DOMAIN not in {o.domain for o in model.opset_import}
    assert [i.name for i in model.graph.input] == ["hidden", "attention_mask"]
    dims = model.graph.output[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["b", "s", "hidden_size"]
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    hidden = np.random.default_rng(0).standard_normal((2, 4, 5)).astype(np.float32)
    (got,) = sess.run(None, {"hidden": hidden, "attention_mask": np.ones((2, 4), np.int64)})
    np.testing.assert_array_equal(got, 2 * hidden)


def test_strip_without_pooling_is_named():
    with pytest.raises(ExportError, match="no 'umr_pool/' pooling nodes"):
        strip_pooling(_scaled_model(4))
