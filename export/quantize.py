"""Dynamic int8 quantisation of the fp32 graph, with a measured rescue when it drifts too far.

Per-channel int8 weights, uint8 activations quantised at run time (ONNX Runtime dynamic
quantisation; the input is usually the SmoothQuant'd graph from :mod:`umr.export.smooth`).
If the int8 graph misses the cosine gate against fp32, the MatMuls of the most sensitive
layers are kept in fp32 (found by measuring, one layer at a time).
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

QUANT_OPS = ("MatMul", "Attention")
REFINE_TRIES = 2
REFINE_MARGIN = 0.001
"""A node goes back to int8 only if the min cosine stays this far above the gate: a result
right at the gate on the parity texts is not trusted to hold on other texts."""
_LAYER = re.compile(r"layers?[._/](\d+)")


@dataclass(frozen=True)
class QuantConfig:
    """How to quantise: ORT dynamic quantisation options."""

    per_channel: bool = True
    reduce_range: bool = False
    nodes_to_exclude: tuple[str, ...] = ()
    fused_input: bool = False  # the input was pre-optimised by ORT (fused com.microsoft ops)

    def details(self) -> dict[str, Any]:
        """What goes into the manifest's variant details."""
        return {
            "method": "onnxruntime dynamic quantization",
            "weights": "int8 per-channel" if self.per_channel else "int8 per-tensor",
            "activations": "uint8, dynamic",
            # One activation scale per tensor spans the whole batch, so a text's vector
            # depends on its batch-mates; the runtime then runs this variant text by text.
            "batch_invariant": False,
            "reduce_range": self.reduce_range,
            "fp32_nodes": list(self.nodes_to_exclude),
        }


def quantize(fp32_path: Path, out_path: Path, cfg: QuantConfig) -> None:
    """Write the int8 model of ``fp32_path`` to ``out_path``."""
    import onnx

    extra: dict[str, Any] = {"MatMulConstBOnly": True}
    if cfg.fused_input:  # fused graphs lose value types the quantiser needs (see GUIDE §4)
        extra["DefaultTensorType"] = onnx.TensorProto.FLOAT
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantiser logs a pre-processing hint on every call
    try:
        _quantize_dynamic(fp32_path, out_path, cfg, extra)
    finally:
        root.setLevel(level)


def _quantize_dynamic(fp32_path: Path, out_path: Path, cfg: QuantConfig, extra: dict) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        fp32_path,
        out_path,
        op_types_to_quantize=list(QUANT_OPS),
        per_channel=cfg.per_channel,
        reduce_range=cfg.reduce_range,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=list(cfg.nodes_to_exclude),
        extra_options=extra,
    )


def matmul_groups(fp32_path: Path) -> dict[str, list[str]]:
    """Quantisable node names grouped by encoder layer (``layer.3``), the rest as ``other``."""
    import onnx

    model = onnx.load(str(fp32_path), load_external_data=False)
    weights = {t.name for t in model.graph.initializer}
    groups: dict[str, list[str]] = defaultdict(list)
    for node in model.graph.node:
        # MatMuls of two activations (attention scores) are never quantised: skip them.
        if node.op_type == "Attention" or (node.op_type == "MatMul" and node.input[1] in weights):
            m = _LAYER.search(node.name)
            groups[f"layer.{m.group(1)}" if m else "other"].append(node.name)
    return dict(groups)


@dataclass
class Rescue:
    """The outcome of a rescue search: config used and the min cosine each step reached."""

    cfg: QuantConfig
    min_cosine: float
    trail: list[tuple[str, float]] = field(default_factory=list)


def rescue(
    fp32_path: Path,
    out_path: Path,
    base: QuantConfig,
    score: Callable[[Path], float],
    gate: float,
) -> Rescue:
    """Keep the most sensitive layers' MatMuls in fp32 until ``score`` (min cosine) >= gate.

    Sensitivity of a layer = the min cosine reached when only that layer stays fp32. Layers
    are then excluded greedily, most helpful first. ``out_path`` holds the last model tried.
    """
    groups = matmul_groups(fp32_path)
    gain: dict[str, float] = {}
    for name, nodes in groups.items():
        quantize(fp32_path, out_path, _with_excluded(base, nodes))
        gain[name] = score(out_path)
    order = sorted(groups, key=lambda g: gain[g], reverse=True)
    excluded: list[str] = []
    trail: list[tuple[str, float]] = []
    best = -1.0
    for name in order:
        excluded += groups[name]
        cfg = _with_excluded(base, excluded)
        quantize(fp32_path, out_path, cfg)
        best = score(out_path)
        trail.append((name, round(best, 6)))
        if best >= gate:
            return _refine(fp32_path, out_path, Rescue(cfg, best, trail), score, gate)
    return Rescue(_with_excluded(base, excluded), best, trail)


def _refine(
    fp32_path: Path, out_path: Path, found: Rescue, score: Callable[[Path], float], gate: float
) -> Rescue:
    """Quantise back the largest excluded MatMuls one at a time while the gate still holds.

    Only the ``REFINE_TRIES`` largest are tried: each try costs a quantise + score, and the
    largest ones carry most of the int8 speed-up. ``out_path`` ends as the returned config.
    """
    sizes = _weight_sizes(fp32_path)
    keep = list(found.cfg.nodes_to_exclude)
    for node in sorted(keep, key=lambda n: sizes.get(n, 0), reverse=True)[:REFINE_TRIES]:
        trial = _with_excluded(found.cfg, [n for n in keep if n != node])
        quantize(fp32_path, out_path, trial)
        low = score(out_path)
        found.trail.append((f"int8 {node}", round(low, 6)))
        if low >= gate + REFINE_MARGIN:
            keep.remove(node)
            found.cfg, found.min_cosine = trial, low
    quantize(fp32_path, out_path, found.cfg)
    return found


def _weight_sizes(fp32_path: Path) -> dict[str, int]:
    """Element count of each node's weight (its second input), by node name."""
    import onnx

    model = onnx.load(str(fp32_path), load_external_data=False)
    numel = {t.name: int(np.prod(t.dims)) for t in model.graph.initializer}
    return {n.name: numel.get(n.input[1], 0) for n in model.graph.node if len(n.input) > 1}


def _with_excluded(base: QuantConfig, nodes: Sequence[str]) -> QuantConfig:
    return QuantConfig(base.per_channel, base.reduce_range, tuple(nodes), base.fused_input)
