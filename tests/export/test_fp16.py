"""The fp16 converter and its emulation: graph checks and ONNX Runtime CPU runs, no GPU.

ORT's CPU provider runs a float16 graph by moving nodes without fp16 kernels back to
float32; the tests therefore check the file runs with float32 I/O within tolerance, and
that the emulation (what a GPU computes) matches a numpy float16 reference.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from umr.export.fp16 import FP16_MAX, convert_to_fp16, to_fp16_array, write_fp16
from umr.export.fp16_parity import emulate_fp16

from umr.errors import ExportError

F32, F16 = TensorProto.FLOAT, TensorProto.FLOAT16
DIM, SEQ = 8, 5


def _attention_like(seed: int = 0) -> onnx.ModelProto:
    """x [b, s, d] float + mask [b, s] int64 -> LayerNorm -> scores + mask bias (-3.4e38
    where masked, as transformers exports it) -> Softmax -> weighted sum -> Tanh -> [b, d]."""
    rng = np.random.default_rng(seed)
    h = helper.make_node
    nodes = [
        h("LayerNormalization", ["x", "ln_w", "ln_b"], ["xn"], axis=-1, epsilon=1e-12),
        h("MatMul", ["xn", "W"], ["q"]),
        h("Transpose", ["xn"], ["xt"], perm=[0, 2, 1]),
        h("MatMul", ["q", "xt"], ["scores"]),
        h("Equal", ["mask", "zero_i"], ["masked"]),
        h("Unsqueeze", ["masked", "axis1"], ["masked3"]),
        h("Where", ["masked3", "neg_big", "zero_f"], ["bias"]),
        h("Add", ["scores", "bias"], ["scores_m"]),
        h("Softmax", ["scores_m"], ["probs"], axis=-1),
        h("MatMul", ["probs", "xn"], ["ctx"]),
        h("ReduceMean", ["ctx", "axis1"], ["pooled"], keepdims=0),
        h("Constant", [], ["half"], value_float=0.5),
        h("Mul", ["pooled", "half"], ["scaled"]),
        h("Tanh", ["scaled"], ["y"]),
    ]
    inits = [
        numpy_helper.from_array(rng.standard_normal(DIM).astype(np.float32), "ln_w"),
        numpy_helper.from_array(rng.standard_normal(DIM).astype(np.float32), "ln_b"),
        numpy_helper.from_array(rng.standard_normal((DIM, DIM)).astype(np.float32), "W"),
        numpy_helper.from_array(np.array(0, np.int64), "zero_i"),
        numpy_helper.from_array(np.array([1], np.int64), "axis1"),
        numpy_helper.from_array(np.array(-3.4028235e38, np.float32), "neg_big"),
        numpy_helper.from_array(np.array(0.0, np.float32), "zero_f"),
    ]
    graph = helper.make_graph(
        nodes,
        "attn",
        [
            helper.make_tensor_value_info("x", F32, ["b", "s", DIM]),
            helper.make_tensor_value_info("mask", TensorProto.INT64, ["b", "s"]),
        ],
        [helper.make_tensor_value_info("y", F32, ["b", DIM])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 10  # onnx 1.23 writes IR 14, which this ORT rejects
    return model


def _feeds(seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    mask = np.ones((3, SEQ), np.int64)
    mask[1, 3:] = 0
    mask[2, 1:] = 0
    return {"x": rng.standard_normal((3, SEQ, DIM)).astype(np.float32), "mask": mask}


def _run(model: onnx.ModelProto, feeds: dict, level=ort.GraphOptimizationLevel.ORT_ENABLE_ALL):
    opts = ort.SessionOptions()
    opts.graph_optimization_level = level
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)[0]


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_fp16_graph_passes_the_checker_and_keeps_fp32_io() -> None:
    model = _attention_like()
    out = convert_to_fp16(model).model
    onnx.checker.check_model(out, full_check=True)
    assert [i.type.tensor_type.elem_type for i in out.graph.input] == [F32, TensorProto.INT64]
    assert [o.type.tensor_type.elem_type for o in out.graph.output] == [F32]
    assert [o.name for o in out.graph.output] == ["y"]
    weights = {t.name: t.data_type for t in out.graph.initializer}
    assert weights["W"] == F16 and weights["neg_big"] == F16
    assert weights["ln_w"] == F32 and weights["ln_b"] == F32  # LayerNorm stays fp32
    assert model.graph.initializer[2].data_type == F32  # the input model is untouched


def test_fp16_graph_runs_on_ort_cpu_within_tolerance_of_fp32() -> None:
    model, feeds = _attention_like(), _feeds()
    want = _run(model, feeds)
    got = _run(convert_to_fp16(model).model, feeds)
    assert got.dtype == np.float32 and got.shape == want.shape
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, want, atol=5e-3)
    assert _cos(got, want).min() > 0.9999


def test_mask_constant_is_clamped_so_masked_rows_give_no_nan() -> None:
    res = convert_to_fp16(_attention_like())
    assert res.clamped_values == 1
    big = next(t for t in res.model.graph.initializer if t.name == "neg_big")
    assert numpy_helper.to_array(big) == -FP16_MAX
    # The emulated GPU run (every tensor rounded to fp16) stays finite too.
    assert np.isfinite(_run(emulate_fp16(res.model), _feeds())).all()


def test_to_fp16_array_clamps_and_counts() -> None:
    arr, n = to_fp16_array(np.array([1.0, -1e9, np.inf, 7e4, np.nan], np.float32))
    assert arr.dtype == np.float16 and n == 3
    assert arr[1] == -FP16_MAX and arr[2] == FP16_MAX and arr[3] == FP16_MAX and np.isnan(arr[4])


def test_kept_ops_get_casts_and_everything_else_is_fp16() -> None:
    res = convert_to_fp16(_attention_like(), keep_fp32_ops={"LayerNormalization", "Softmax"})
    typed = onnx.shape_inference.infer_shapes(res.model, strict_mode=True)
    types = {v.name: v.type.tensor_type.elem_type for v in typed.graph.value_info}
    assert types["xn"] == F32 and types["probs"] == F32  # outputs of kept ops
    assert types["q"] == F16 and types["scores_m"] == F16 and types["scaled"] == F16
    assert res.kept_fp32_nodes == 2 and res.casts_added > 0
    assert res.details()["kept_fp32_ops"] == ["LayerNormalization", "Softmax"]


def test_constant_value_float_becomes_an_fp16_tensor() -> None:
    out = convert_to_fp16(_attention_like()).model
    const = next(n for n in out.graph.node if n.op_type == "Constant")
    assert [a.name for a in const.attribute] == ["value"]
    assert const.attribute[0].t.data_type == F16


def test_model_local_functions_stay_fp32_with_casts_at_their_edge() -> None:
    fn = helper.make_function(
        "ai.test",
        "Double",
        ["a"],
        ["b"],
        [helper.make_node("Add", ["a", "a"], ["b"])],
        [helper.make_opsetid("", 18)],
    )
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["h"]),
            helper.make_node("Double", ["h"], ["y"], domain="ai.test"),
        ],
        "g",
        [helper.make_tensor_value_info("x", F32, ["b", 4])],
        [helper.make_tensor_value_info("y", F32, ["b", 4])],
        [numpy_helper.from_array(np.eye(4, dtype=np.float32), "W")],
    )
    model = helper.make_model(
        graph,
        functions=[fn],
        opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("ai.test", 1)],
    )
    model.ir_version = 10
    out = convert_to_fp16(model).model
    assert list(out.functions[0].node[0].input) == ["a", "a"]  # body untouched
    call = next(n for n in out.graph.node if n.domain == "ai.test")
    assert call.input[0] == "h__to_fp32"
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    np.testing.assert_allclose(_run(out, {"x": x}), 2 * x)


def test_float_graph_output_is_cast_back_under_its_own_name() -> None:
    out = convert_to_fp16(_attention_like()).model
    last = out.graph.node[-1]
    assert (last.op_type, list(last.output)) == ("Cast", ["y"])
    assert last.attribute[0].i == F32


def test_control_flow_is_refused() -> None:
    then = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["t"])],
        "then",
        [],
        [helper.make_tensor_value_info("t", F32, [1])],
    )
    graph = helper.make_graph(
        [helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=then)],
        "g",
        [
            helper.make_tensor_value_info("c", TensorProto.BOOL, []),
            helper.make_tensor_value_info("x", F32, [1]),
        ],
        [helper.make_tensor_value_info("y", F32, [1])],
    )
    with pytest.raises(ExportError, match="subgraph"):
        convert_to_fp16(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]))


def test_emulation_matches_a_numpy_fp16_reference() -> None:
    """x @ W -> Tanh, every tensor rounded to fp16 after it is made, math in fp32."""
    rng = np.random.default_rng(3)
    w = rng.standard_normal((16, 16)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Tanh", ["h"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", F32, ["b", 16])],
        [helper.make_tensor_value_info("y", F32, ["b", 16])],
        [numpy_helper.from_array(w, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 10
    x = (4 * rng.standard_normal((4, 16))).astype(np.float32)
    got = _run(emulate_fp16(convert_to_fp16(model).model), {"x": x})

    def r16(a: np.ndarray) -> np.ndarray:
        return a.astype(np.float16).astype(np.float32)

    want = r16(np.tanh(r16(r16(x) @ r16(w))))
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3)
    assert not np.allclose(got, np.tanh(x @ w), atol=1e-6)  # the rounding is really there


def test_write_fp16_round_trips_through_a_file(tmp_path: Path) -> None:
    src, dst = tmp_path / "m.onnx", tmp_path / "m.fp16.onnx"
    onnx.save(_attention_like(), str(src))
    res = write_fp16(src, dst)
    onnx.checker.check_model(str(dst), full_check=True)
    assert res.converted_nodes > 0 and dst.stat().st_size < src.stat().st_size + 4096


@pytest.mark.slow
@pytest.mark.bundle
def test_real_bundle_fp16_parity(real_bundle: Path, tmp_path: Path) -> None:
    """all-MiniLM-L6-v2: fp16 file and its GPU emulation vs fp32 on the parity texts."""
    from umr.export.fp16_parity import FP16_GATE, _unoptimized_session
    from umr.export.parity import compare, onnx_embed, onnx_session
    from umr.export.sentences import PARITY_TEXTS

    tok, texts = real_bundle / "tokenizer.json", list(PARITY_TEXTS)
    res = write_fp16(real_bundle / "model.onnx", tmp_path / "model.fp16.onnx")
    onnx.save(emulate_fp16(res.model), str(tmp_path / "emu.onnx"))
    fp32 = onnx_embed(onnx_session(real_bundle / "model.onnx"), tok, texts)
    file_run = onnx_embed(onnx_session(tmp_path / "model.fp16.onnx"), tok, texts)
    emulated = onnx_embed(_unoptimized_session(tmp_path / "emu.onnx"), tok, texts)
    assert compare(file_run, fp32).cosines.min() >= FP16_GATE
    assert compare(emulated, fp32).cosines.min() >= FP16_GATE
