"""Append pooling + L2 normalisation to an ONNX encoder graph, from plain ONNX ops.

The subgraph reads the encoder's token states ``[batch, seq, dim]``, ``attention_mask`` and
``pool_mask`` (both int64 ``[batch, seq]``) and becomes the graph's only output, float32
``[batch, dim]``. Only standard ops are used (Cast, Mul, ReduceSum, ReduceMax, ReduceL2,
Max, Div, CumSum, Equal, Gather, Slice), so every execution provider, TensorRT included, runs it.
By default it is packaged as one model-local ONNX function, which ONNX Runtime inlines at
load: the graph stays readable (one ``MeanPoolL2`` node) at no runtime cost.

Numerics match :mod:`umr.kernels.reference`: the mean divisor is floored at ``POOL_EPS`` and
the norm at ``NORM_EPS``, so an all-zero ``pool_mask`` row gives zeros, never NaN. With
``truncate_dim`` (Matryoshka) the pooled row is sliced to its first ``truncate_dim`` components
inside the same function, before the L2, so the output is ``[batch, truncate_dim]`` unit rows.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import onnx
from onnx import TensorProto, helper
from umr.kernels.reference import NORM_EPS, POOL_EPS

from umr.errors import ExportError

FUNCTION_DOMAIN = "ai.umr"
NODE_PREFIX = "umr_pool/"  # every node append_pooling adds is named with it (strip_pooling)
MIN_OPSET = 13  # ReduceSum takes its axes as an input from 13 on; older graphs are not worth it
_FUNCTION_NAMES = {"mean": "MeanPool", "cls": "ClsPool", "last": "LastTokenPool"}


@dataclass(frozen=True)
class PoolingSpec:
    """What to append: the pooling ``mode`` (mean/cls/last), whether to L2-normalise, and
    an optional Matryoshka ``truncate_dim`` (keep the first components, then normalise)."""

    mode: str = "mean"
    normalize: bool = True
    hidden: str = "last_hidden_state"
    attention_mask: str = "attention_mask"
    pool_mask: str = "pool_mask"
    output: str = "sentence_embedding"
    truncate_dim: int | None = None  # last, so positional construction stays compatible

    def __post_init__(self) -> None:
        if self.mode not in _FUNCTION_NAMES:
            raise ExportError(f"pooling mode {self.mode!r} is not one of {tuple(_FUNCTION_NAMES)}")
        d = self.truncate_dim
        if d is not None and (isinstance(d, bool) or not isinstance(d, int) or d < 1):
            raise ExportError(f"truncate_dim {d!r} is not a positive int (or None)")

    @property
    def function_name(self) -> str:
        """Name of the ONNX function, e.g. ``MeanPoolL2`` or ``MeanPoolTrunc256L2``.

        The kept width is part of the name because it is baked into the function's body:
        two truncations in one model must not share a name.
        """
        trunc = f"Trunc{self.truncate_dim}" if self.truncate_dim is not None else ""
        return _FUNCTION_NAMES[self.mode] + trunc + ("L2" if self.normalize else "")


class _Nodes:
    """Collects nodes with unique value names; knows the opset to pick the reduce form."""

    def __init__(self, prefix: str, opset: int) -> None:
        self.prefix, self.opset, self.nodes = prefix, opset, []
        self._n = 0

    def add(self, op: str, inputs: list[str], **attrs: object) -> str:
        self._n += 1
        out = f"{self.prefix}{op.lower()}_{self._n}"
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def const(self, value: float | int | list[int], dtype: int) -> str:
        dims = [len(value)] if isinstance(value, list) else []
        vals = value if isinstance(value, list) else [value]
        return self.add("Constant", [], value=helper.make_tensor("v", dtype, dims, vals))

    def reduce(self, op: str, x: str, axis: int, keepdims: int) -> str:
        # ReduceSum moved axes to an input in opset 13, the other reductions in 18.
        if op == "ReduceSum" or self.opset >= 18:
            axes = self.const([axis], TensorProto.INT64)
            return self.add(op, [x, axes], keepdims=keepdims)
        return self.add(op, [x], axes=[axis], keepdims=keepdims)


def _pool_nodes(b: _Nodes, mode: str, hidden: str, attn: str, pmask: str) -> str:
    if mode == "cls":
        return b.add("Gather", [hidden, b.const(0, TensorProto.INT64)], axis=1)
    if mode == "mean":
        weights = b.add("Cast", [pmask], to=TensorProto.FLOAT)
    else:  # last: one-hot at the last position where attention_mask is 1, zeros if none
        mask = b.add("Cast", [attn], to=TensorProto.FLOAT)
        pos = b.add(
            "CumSum",
            [
                b.add("Add", [b.add("Mul", [mask, b.const(0.0, 1)]), b.const(1.0, 1)]),
                b.const(1, TensorProto.INT64),
            ],
        )
        last = b.reduce("ReduceMax", b.add("Mul", [pos, mask]), axis=1, keepdims=1)
        weights = b.add("Cast", [b.add("Equal", [pos, last])], to=TensorProto.FLOAT)
    w3 = b.add("Unsqueeze", [weights, b.const([2], TensorProto.INT64)])
    summed = b.reduce("ReduceSum", b.add("Mul", [hidden, w3]), axis=1, keepdims=0)
    if mode == "last":
        return summed
    count = b.add("Max", [b.reduce("ReduceSum", w3, axis=1, keepdims=0), b.const(POOL_EPS, 1)])
    return b.add("Div", [summed, count])


def _truncate_nodes(b: _Nodes, x: str, keep: int) -> str:
    # Slice the pooled [batch, dim] row, not the [batch, seq, dim] states: pooling is per
    # component, so the result is the same and the slice copies batch*keep floats only.
    starts, ends, axes = ([v] for v in (0, keep, 1))
    return b.add(
        "Slice",
        [
            x,
            b.const(starts, TensorProto.INT64),
            b.const(ends, TensorProto.INT64),
            b.const(axes, TensorProto.INT64),
        ],
    )


def _l2_nodes(b: _Nodes, x: str) -> str:
    norm = b.reduce("ReduceL2", x, axis=1, keepdims=1)
    return b.add("Div", [x, b.add("Max", [norm, b.const(NORM_EPS, 1)])])


def build_l2_nodes(x: str, out: str, opset: int, prefix: str = "umr_l2/") -> list[onnx.NodeProto]:
    """Nodes writing ``out = x / max(||x||, eps)`` over axis 1: the pooling's own L2, for
    graphs that add to a pooled vector before normalizing (the image skip path)."""
    b = _Nodes(prefix, opset)
    nodes = b.nodes
    _l2_nodes(b, x)
    nodes[-1].output[0] = out  # the Div that made it: named as the caller asked
    return nodes


def build_pooling_nodes(
    spec: PoolingSpec, opset: int, prefix: str = "umr_pool/"
) -> tuple[list[onnx.NodeProto], str]:
    """The pooling nodes reading ``spec``'s input names; returns (nodes, output value name)."""
    if opset < MIN_OPSET:
        raise ExportError(f"graph opset {opset} < {MIN_OPSET}: re-export with a newer opset")
    b = _Nodes(prefix, opset)
    out = _pool_nodes(b, spec.mode, spec.hidden, spec.attention_mask, spec.pool_mask)
    if spec.truncate_dim is not None:  # before the L2: truncated rows are unit vectors again
        out = _truncate_nodes(b, out, spec.truncate_dim)
    if spec.normalize:
        out = _l2_nodes(b, out)
    return b.nodes, out


def pooling_function(spec: PoolingSpec, opset: int) -> onnx.FunctionProto:
    """A model-local ONNX function ``ai.umr.<MeanPoolL2...>(hidden, attention_mask, pool_mask)``."""
    local = replace(spec, hidden="hidden", attention_mask="attention_mask", pool_mask="pool_mask")
    nodes, out = build_pooling_nodes(local, opset, prefix="")
    nodes.append(helper.make_node("Identity", [out], ["embedding"]))
    return helper.make_function(
        FUNCTION_DOMAIN,
        spec.function_name,
        ["hidden", "attention_mask", "pool_mask"],
        ["embedding"],
        nodes,
        [helper.make_opsetid("", opset)],
    )


def default_opset(model: onnx.ModelProto) -> int:
    """The model's ``ai.onnx`` opset version."""
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return imp.version
    raise ExportError("model has no ai.onnx opset import")


def append_pooling(
    model: onnx.ModelProto, spec: PoolingSpec, *, as_function: bool = True
) -> onnx.ModelProto:
    """A copy of ``model`` whose only output is ``spec.output`` = pooled (and L2'd) ``spec.hidden``.

    Adds the ``spec.pool_mask`` input (int64, same dims as ``attention_mask``) if missing.
    The output is ``[batch, truncate_dim]`` with truncation; a ``truncate_dim`` wider than a
    hidden dim recorded in the graph is an :class:`ExportError` (when the graph records no
    hidden dim, ONNX's Slice clamps and the output keeps the whole width).
    """
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g, opset = out.graph, default_opset(out)
    _check_values(g, spec)
    if spec.pool_mask not in {i.name for i in g.input}:
        attn = next(i for i in g.input if i.name == spec.attention_mask)
        pm = g.input.add()
        pm.CopyFrom(attn)
        pm.name = spec.pool_mask
    batch, dim = _output_dims(g, spec.hidden)
    if spec.truncate_dim is not None:
        if isinstance(dim, int) and spec.truncate_dim > dim:
            raise ExportError(
                f"truncate_dim {spec.truncate_dim} > hidden dim {dim} of {spec.hidden!r}"
            )
        dim = spec.truncate_dim
    inputs = [spec.hidden, spec.attention_mask, spec.pool_mask]
    if as_function:
        out.functions.append(pooling_function(spec, opset))
        out.opset_import.append(helper.make_opsetid(FUNCTION_DOMAIN, 1))
        g.node.append(
            helper.make_node(
                spec.function_name,
                inputs,
                [spec.output],
                name=f"{NODE_PREFIX}{spec.function_name}",
                domain=FUNCTION_DOMAIN,
            )
        )
    else:
        nodes, last = build_pooling_nodes(spec, opset, prefix=NODE_PREFIX)
        nodes.append(helper.make_node("Identity", [last], [spec.output], name=f"{NODE_PREFIX}out"))
        g.node.extend(nodes)
    del g.output[:]
    g.output.append(helper.make_tensor_value_info(spec.output, TensorProto.FLOAT, [batch, dim]))
    return out


def strip_pooling(
    model: onnx.ModelProto,
    hidden: str = "last_hidden_state",
    attention_mask: str = "attention_mask",
    pool_mask: str = "pool_mask",
) -> onnx.ModelProto:
    """The inverse of :func:`append_pooling`: a copy whose only output is ``hidden`` again.

    Removes the pooling nodes (named ``umr_pool/...``), the pooling functions and their
    opset import, and the ``pool_mask`` input once nothing reads it. The output is declared
    ``[batch, seq, hidden_size]`` with the batch/seq dims of ``attention_mask``. Used to
    compare in-graph pooling against pooling outside the session, on the same weights.
    """
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    kept = [n for n in g.node if not n.name.startswith(NODE_PREFIX)]
    if len(kept) == len(g.node):
        raise ExportError(f"graph has no {NODE_PREFIX!r} pooling nodes to strip")
    del g.node[:]
    g.node.extend(kept)
    _check_values(g, PoolingSpec(hidden=hidden, attention_mask=attention_mask))
    _drop_function_domain(out)
    if not any(pool_mask in n.input for n in g.node):
        inputs = [i for i in g.input if i.name != pool_mask]
        del g.input[:]
        g.input.extend(inputs)
    attn = next(i for i in g.input if i.name == attention_mask).type.tensor_type.shape.dim
    shape = [_dim(attn, 0, "batch_size"), _dim(attn, 1, "sequence_length"), "hidden_size"]
    del g.output[:]
    g.output.append(helper.make_tensor_value_info(hidden, TensorProto.FLOAT, shape))
    return out


def _dim(dims: Any, k: int, default: str) -> str | int:
    """Dim ``k`` of a shape proto as a name or size, ``default`` when not recorded."""
    return (dims[k].dim_param or dims[k].dim_value or default) if k < len(dims) else default


def _drop_function_domain(model: onnx.ModelProto) -> None:
    funcs = [f for f in model.functions if f.domain != FUNCTION_DOMAIN]
    del model.functions[:]
    model.functions.extend(funcs)
    imports = [o for o in model.opset_import if o.domain != FUNCTION_DOMAIN]
    del model.opset_import[:]
    model.opset_import.extend(imports)


def _check_values(g: onnx.GraphProto, spec: PoolingSpec) -> None:
    produced = {o for n in g.node for o in n.output} | {i.name for i in g.input}
    if spec.hidden not in produced:
        raise ExportError(
            f"graph has no value {spec.hidden!r} to pool (outputs: {[o.name for o in g.output]})"
        )
    if spec.attention_mask not in {i.name for i in g.input}:
        raise ExportError(f"graph has no input {spec.attention_mask!r}")


def _output_dims(g: onnx.GraphProto, name: str) -> tuple[str | int, str | int | None]:
    """(batch dim, hidden dim) of ``name`` from the graph's value infos, when recorded."""
    for vi in (*g.output, *g.input, *g.value_info):
        if vi.name == name and len(vi.type.tensor_type.shape.dim) == 3:
            d = vi.type.tensor_type.shape.dim
            batch = d[0].dim_param or d[0].dim_value or "batch_size"
            return batch, (d[2].dim_value or d[2].dim_param or None)
    return "batch_size", None
