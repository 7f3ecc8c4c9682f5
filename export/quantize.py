"""Dynamic int8 quantisation of the fp32 graph, with a measured rescue when it drifts too far.

Per-channel int8 weights, uint8 activations quantised at run time (ONNX Runtime dynamic
quantisation). If the int8 graph misses the cosine gate against fp32, the MatMuls of the
most sensitive layers are kept in fp32 (found by measuring, one layer at a time).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

QUANT_OPS = ("MatMul", "Attention")
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
            "reduce_range": self.reduce_range,
            "fp32_nodes": list(self.nodes_to_exclude),
        }


def quantize(fp32_path: Path, out_path: Path, cfg: QuantConfig) -> None:
    """Write the int8 model of ``fp32_path`` to ``out_path``."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    extra: dict[str, Any] = {"MatMulConstBOnly": True}
    if cfg.fused_input:  # fused graphs lose value types the quantiser needs (see GUIDE §4)
        extra["DefaultTensorType"] = onnx.TensorProto.FLOAT
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
    groups: dict[str, list[str]] = defaultdict(list)
    for node in model.graph.node:
        if node.op_type in QUANT_OPS:
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
            return Rescue(cfg, best, trail)
    return Rescue(_with_excluded(base, excluded), best, trail)


def _with_excluded(base: QuantConfig, nodes: Sequence[str]) -> QuantConfig:
    return QuantConfig(base.per_channel, base.reduce_range, tuple(nodes), base.fused_input)

