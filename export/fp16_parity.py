"""Gate the fp16 variant against fp32, measuring what a GPU computes, on the CPU.

ONNX Runtime's CPU provider runs a float16 graph, but only by inserting Casts: nodes
without a float16 CPU kernel (MatMul, Softmax, most elementwise ops) are moved back to
float32 as whole regions, so a CPU run of the fp16 file measures the rounding of the
weights and little else. A GPU stores every activation in float16 between kernels
(accumulating inside them in float32). :func:`emulate_fp16` builds a float32 graph that
does exactly that: fp16-rounded weights and constants, and every float16 tensor of the
fp16 graph rounded to float16 (a Cast there and back) right after it is produced. The
gate is measured on that graph; the CPU run of the fp16 file itself is recorded too.
"""

from __future__ import annotations

import warnings
from collections.abc import Collection, Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper
from umr.export.fp16 import DEFAULT_KEEP_FP32, FLOAT, FLOAT16, write_fp16

from umr.bundle import Parity, Variant

FP16_FILE = "model.fp16.onnx"
FP16_GATE = 0.999
"""Min cosine to fp32 over the parity texts (measured with :func:`emulate_fp16`)."""


def emulate_fp16(fp16_model: onnx.ModelProto) -> onnx.ModelProto:
    """A float32 graph computing what ``fp16_model`` computes on a GPU (see module doc)."""
    typed = onnx.shape_inference.infer_shapes(fp16_model, strict_mode=True)
    types = {t.name: t.data_type for t in typed.graph.initializer}
    for vi in (*typed.graph.input, *typed.graph.output, *typed.graph.value_info):
        types[vi.name] = vi.type.tensor_type.elem_type
    nodes: list[onnx.NodeProto] = []
    for node in fp16_model.graph.node:
        new = onnx.NodeProto()
        new.CopyFrom(node)
        _widen_attributes(new)
        halves = [o for o in node.output if types.get(o) == FLOAT16]
        for i, out in enumerate(new.output):
            if out in halves:
                new.output[i] = f"{out}__exact"
        nodes.append(new)
        for out in halves:  # round to float16 and back: what a GPU stores
            nodes += [
                helper.make_node("Cast", [f"{out}__exact"], [f"{out}__h"], to=FLOAT16),
                helper.make_node("Cast", [f"{out}__h"], [out], to=FLOAT),
            ]
    g = fp16_model.graph
    inits = [_widen(t) if t.data_type == FLOAT16 else t for t in g.initializer]
    model = onnx.ModelProto()
    model.CopyFrom(fp16_model)
    model.graph.CopyFrom(helper.make_graph(nodes, g.name, list(g.input), list(g.output), inits))
    return model


def _widen(tensor: onnx.TensorProto) -> onnx.TensorProto:
    return numpy_helper.from_array(numpy_helper.to_array(tensor).astype(np.float32), tensor.name)


def _widen_attributes(node: onnx.NodeProto) -> None:
    """Attributes that make float16 (``Cast(to=fp16)``, fp16 constants) make float32."""
    for attr in node.attribute:
        if attr.name in ("to", "dtype") and attr.type == onnx.AttributeProto.INT:
            if attr.i == FLOAT16:
                attr.i = FLOAT
        elif attr.type == onnx.AttributeProto.TENSOR and attr.t.data_type == FLOAT16:
            attr.t.CopyFrom(_widen(attr.t))


def build_fp16_variant(
    fp32_path: Path,
    out_path: Path,
    tokenizer_path: Path,
    texts: Sequence[str],
    fp32_emb: np.ndarray,
    ref_emb: np.ndarray,
    *,
    gate: float = FP16_GATE,
    reference: str = "sentence-transformers",
    keep_fp32_ops: Collection[str] = DEFAULT_KEEP_FP32,
) -> Variant | None:
    """Write the fp16 graph to ``out_path`` and gate it; None (+ warning) if it fails.

    ``fp32_emb``/``ref_emb`` are the fp32 graph's and the reference's vectors of
    ``texts``. The recorded parity: emulated fp16 vs fp32 (gated) and vs the reference.
    """
    from umr.export.parity import compare, onnx_embed, onnx_session

    result = write_fp16(fp32_path, out_path, keep_fp32_ops)
    emulated = out_path.with_name(out_path.name + ".emulated")
    onnx.save(emulate_fp16(result.model), str(emulated))
    try:
        emb = onnx_embed(_unoptimized_session(emulated), tokenizer_path, texts)
    finally:
        emulated.unlink(missing_ok=True)
    cpu_run = compare(onnx_embed(onnx_session(out_path), tokenizer_path, texts), fp32_emb)
    vs_fp32, vs_ref = compare(emb, fp32_emb), compare(emb, ref_emb)
    low = float(vs_fp32.cosines.min())
    if not np.isfinite(emb).all() or low < gate:
        warnings.warn(
            f"fp16 variant left out: min cosine vs fp32 {low:.6f} < gate {gate} "
            f"(float16 kept for all but {', '.join(keep_fp32_ops) or 'no'} ops)",
            stacklevel=3,
        )
        out_path.unlink()
        return None
    details = {
        **result.details(),
        "parity_method": (
            "onnxruntime CPU on an emulation: fp16-rounded weights, every fp16 tensor "
            "rounded to fp16 after the op that makes it, op internals in fp32"
        ),
        "cpu_run_min_cosine": round(float(cpu_run.cosines.min()), 6),
    }
    parity: tuple[Parity, ...] = (vs_fp32.parity("fp32", gate), vs_ref.parity(reference, None))
    return Variant("fp16", out_path.name, "float16", parity, details)


def _unoptimized_session(path: Path) -> object:
    """A CPU session with graph optimisations off, so no Cast pair is folded away."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.intra_op_num_threads = 2
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
