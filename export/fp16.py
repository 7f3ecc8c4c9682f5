"""The fp16 variant: fp16 weights and compute inside, fp32 inputs and outputs at the edges.

A small converter of our own instead of onnxconverter-common (one dependency less; the
graphs we export are plain ONNX of a few dozen op types). Rules:

- every float32 initializer, ``Constant`` and ``Cast(to=float)`` of a converted node
  becomes float16; values outside float16's range are clamped to +-65504 (the attention
  mask's ``-3.4e38`` would become ``-inf`` and give NaN where it meets a zero);
- the nodes listed in ``keep_fp32_ops``, and every node outside the default ONNX domain
  (model-local functions such as umr's pooling, whose body we leave alone), stay float32:
  Casts are inserted where a tensor crosses between the two halves;
- graph inputs and outputs keep their float32 type: a float32 input is cast on entry,
  a float32 output is computed in float16 under another name and cast back.

The result is checked with ``onnx.checker`` (full check: types are inferred strictly).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from umr.errors import ExportError

FLOAT, FLOAT16 = TensorProto.FLOAT, TensorProto.FLOAT16
FP16_MAX = float(np.finfo(np.float16).max)  # 65504
#: Ops kept in float32 by default. LayerNormalization sums squares across the hidden
#: width, which overflows float16 in a kernel that does not accumulate in float32 (ONNX's
#: ``stash_type`` asks it to; TensorRT warns about fp16 LayerNorm overflow). On
#: all-MiniLM-L6-v2 it made no measurable difference (emulated min cosine to fp32 0.999997
#: without, 0.999998 with): a safety margin costing two small Casts per LayerNorm.
#: Softmax stays float16: kernels subtract the row max, the mask constant is clamped, and
#: keeping it float32 would cast the largest activation ([batch, heads, seq, seq]) twice.
DEFAULT_KEEP_FP32: frozenset[str] = frozenset({"LayerNormalization"})
#: Inputs that ONNX types as float32 whatever the data type (``Resize``'s scales).
_FP32_ONLY_INPUTS: dict[str, tuple[int, ...]] = {"Resize": (2,), "Upsample": (1,)}
_DEFAULT_DOMAINS = ("", "ai.onnx")


@dataclass(frozen=True)
class Fp16Result:
    """The converted model and what the conversion did (for the manifest)."""

    model: onnx.ModelProto
    kept_fp32_ops: tuple[str, ...]
    kept_fp32_nodes: int
    converted_nodes: int
    casts_added: int
    clamped_values: int

    def details(self) -> dict[str, object]:
        """What goes into the manifest's variant details."""
        return {
            "method": "umr float16 conversion (fp16 weights and compute, fp32 inputs/outputs)",
            "io_dtype": "float32",
            "kept_fp32_ops": list(self.kept_fp32_ops),
            "kept_fp32_nodes": self.kept_fp32_nodes,
            "converted_nodes": self.converted_nodes,
            "casts_added": self.casts_added,
            "clamped_values": self.clamped_values,
            "batch_invariant": True,
        }


def convert_to_fp16(
    model: onnx.ModelProto, keep_fp32_ops: Collection[str] = DEFAULT_KEEP_FP32
) -> Fp16Result:
    """A float16 copy of ``model`` with float32 inputs/outputs; ``model`` is not changed.

    Raises ``ExportError`` when the graph has control flow (``If``/``Loop``/``Scan``), a
    float tensor whose type cannot be inferred, or when the result fails the checker.
    """
    typed = onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=False)
    types = _elem_types(typed)
    _refuse_subgraphs(model.graph.node)
    conv = _Converter(model, types, frozenset(keep_fp32_ops))
    out = conv.run()
    try:
        onnx.checker.check_model(out, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ExportError(f"float16 graph failed onnx.checker: {exc}") from exc
    return Fp16Result(
        out,
        tuple(sorted(keep_fp32_ops)),
        conv.kept_nodes,
        conv.converted_nodes,
        conv.casts_added,
        conv.clamped,
    )


def write_fp16(
    fp32_path: Path, out_path: Path, keep_fp32_ops: Collection[str] = DEFAULT_KEEP_FP32
) -> Fp16Result:
    """Convert the graph at ``fp32_path`` and save it to ``out_path``."""
    from umr.export.onnx_graph import save_model

    result = convert_to_fp16(onnx.load(str(fp32_path)), keep_fp32_ops)
    save_model(result.model, out_path)
    return result


def to_fp16_array(values: np.ndarray) -> tuple[np.ndarray, int]:
    """``values`` as float16, clamped to float16's finite range; (array, values clamped)."""
    arr = np.asarray(values, dtype=np.float32)
    clamped = int(np.count_nonzero(np.abs(arr) > FP16_MAX))  # counts infinities; NaN never
    return np.clip(arr, -FP16_MAX, FP16_MAX).astype(np.float16), clamped


# --- the conversion ----------------------------------------------------------------------


def _elem_types(model: onnx.ModelProto) -> dict[str, int]:
    g = model.graph
    types = {t.name: t.data_type for t in g.initializer}
    for vi in (*g.input, *g.output, *g.value_info):
        if vi.type.HasField("tensor_type"):
            types[vi.name] = vi.type.tensor_type.elem_type
    return types


def _refuse_subgraphs(nodes: Iterable[onnx.NodeProto]) -> None:
    for node in nodes:
        for attr in node.attribute:
            if attr.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
                raise ExportError(
                    f"node {node.name or node.op_type!r} ({node.op_type}) has a subgraph; "
                    "the float16 converter handles graphs without control flow only"
                )


def _input_type(node: onnx.NodeProto, index: int, want: int) -> int:
    """The float type input ``index`` of ``node`` must have when the node computes in ``want``."""
    return FLOAT if index in _FP32_ONLY_INPUTS.get(node.op_type, ()) else want


class _Converter:
    """One conversion: decides each tensor's home type and writes the new node list."""

    def __init__(self, model: onnx.ModelProto, types: dict[str, int], keep: frozenset[str]):
        self.src, self.types, self.keep = model, types, keep
        g = model.graph
        self.graph_inputs = {i.name for i in g.input}
        self.graph_outputs = {o.name for o in g.output}
        self.inits = {t.name: t for t in g.initializer}
        self.home: dict[str, int] = {}  # float tensor -> the type it is produced in
        self.casts: dict[tuple[str, int], str] = {}  # (tensor, type) -> its cast's output
        self.nodes: list[onnx.NodeProto] = []
        self.kept_nodes = self.converted_nodes = self.casts_added = self.clamped = 0

    def run(self) -> onnx.ModelProto:
        g = self.src.graph
        nodes = list(g.node)
        wanted = [FLOAT if self._kept(n) else FLOAT16 for n in nodes]
        self._plan_homes(nodes, wanted)
        rename = {o: f"{o}__fp16" for o in self.graph_outputs if self.home.get(o) == FLOAT16}
        for node, want in zip(nodes, wanted, strict=True):
            self._emit(node, want, rename)
        for out, inner in rename.items():
            self._add_cast(inner, out, FLOAT)
        return self._build(rename)

    def _kept(self, node: onnx.NodeProto) -> bool:
        return node.domain not in _DEFAULT_DOMAINS or node.op_type in self.keep

    def _is_float(self, name: str) -> bool:
        if not name:
            return False
        if name not in self.types:
            raise ExportError(f"cannot infer the type of tensor {name!r}; cannot convert it")
        return self.types[name] == FLOAT

    def _plan_homes(self, nodes: Sequence[onnx.NodeProto], wanted: Sequence[int]) -> None:
        """The type each float tensor is produced in: its producer's, or, for a weight,
        float16 if any consumer computes in float16."""
        for name in self.graph_inputs:
            if self._is_float(name):
                self.home[name] = FLOAT
        users: dict[str, set[int]] = {}
        for node, want in zip(nodes, wanted, strict=True):
            for i, name in enumerate(node.input):
                if name in self.inits and self._is_float(name):
                    users.setdefault(name, set()).add(_input_type(node, i, want))
            for name in node.output:
                if self._is_float(name):
                    self.home[name] = want
        for name, needs in users.items():
            self.home[name] = FLOAT16 if FLOAT16 in needs else FLOAT

    def _emit(self, node: onnx.NodeProto, want: int, rename: dict[str, str]) -> None:
        new = onnx.NodeProto()
        new.CopyFrom(node)
        for i, name in enumerate(node.input):
            need = _input_type(node, i, want)
            new.input[i] = self._as(rename.get(name, name), self.home.get(name), need)
        for i, name in enumerate(node.output):
            new.output[i] = rename.get(name, name)
        if want == FLOAT16:
            self._convert_attributes(new)
            self.converted_nodes += 1
        else:
            self.kept_nodes += 1
        self.nodes.append(new)

    def _as(self, name: str, home: int | None, need: int) -> str:
        """``name`` itself, or a cast of it, so that a consumer wanting ``need`` gets it."""
        if home is None or home == need:
            return name
        key = (name, need)
        if key not in self.casts:
            suffix = "fp32" if need == FLOAT else "fp16"
            self.casts[key] = self._add_cast(name, f"{name}__to_{suffix}", need)
        return self.casts[key]

    def _add_cast(self, src: str, dst: str, to: int) -> str:
        self.nodes.append(helper.make_node("Cast", [src], [dst], name=f"{dst}__cast", to=to))
        self.casts_added += 1
        return dst

    def _convert_attributes(self, node: onnx.NodeProto) -> None:
        for attr in node.attribute:
            if attr.name in ("to", "dtype") and attr.type == onnx.AttributeProto.INT:
                if attr.i == FLOAT:
                    attr.i = FLOAT16
            elif attr.type == onnx.AttributeProto.TENSOR and attr.t.data_type == FLOAT:
                attr.t.CopyFrom(self._fp16_tensor(attr.t))
        if node.op_type == "Constant":
            self._constant_scalars_to_tensor(node)

    def _constant_scalars_to_tensor(self, node: onnx.NodeProto) -> None:
        """``Constant(value_float[s]=...)`` yields float32: rewrite it as an fp16 ``value``."""
        for attr in list(node.attribute):
            if attr.name in ("value_float", "value_floats"):
                vals = [attr.f] if attr.name == "value_float" else list(attr.floats)
                arr = np.array(vals if attr.name == "value_floats" else vals[0], np.float32)
                node.attribute.remove(attr)
                node.attribute.append(
                    helper.make_attribute("value", self._fp16_tensor(numpy_helper.from_array(arr)))
                )

    def _fp16_tensor(self, tensor: TensorProto) -> TensorProto:
        arr, clamped = to_fp16_array(numpy_helper.to_array(tensor))
        self.clamped += clamped
        return numpy_helper.from_array(arr, tensor.name)

    def _build(self, rename: dict[str, str]) -> onnx.ModelProto:
        g = self.src.graph
        inits = []
        for t in g.initializer:
            if self.home.get(t.name) == FLOAT16 and t.data_type == FLOAT:
                inits.append(self._fp16_tensor(t))
            else:
                inits.append(t)
        graph = helper.make_graph(
            self.nodes, g.name, list(g.input), list(g.output), inits, doc_string=g.doc_string
        )
        model = onnx.ModelProto()
        model.CopyFrom(self.src)
        model.graph.CopyFrom(graph)  # value_info dropped: its types changed; re-inferred on load
        return model
