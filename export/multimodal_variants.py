"""The int8 and fp16 variants of a multimodal bundle: both graphs converted, gated per kind.

int8 reuses the text export's method on each graph (:mod:`umr.export.smooth` SmoothQuant
calibrated on items disjoint from the parity items, :mod:`umr.export.quantize` dynamic
quantisation, and its rescue that keeps the most sensitive layers' MatMuls in fp32).
fp16 reuses :mod:`umr.export.fp16` and is gated on :func:`umr.export.fp16_parity.emulate_fp16`
(what a GPU computes). A variant is kept only when every kind reaches its gate against
fp32; otherwise it is left out with a warning, both of its graphs deleted.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from umr.export.multimodal_parity import (
    Embed,
    Feeder,
    compare_kinds,
    graphs_embed,
    onnx_embed,
)
from umr.export.parity import compare, onnx_session
from umr.training.data.records import Side

from umr.bundle import Variant

TEXT_GRAPHS = {"fp32": "model.onnx", "int8": "model.int8.onnx", "fp16": "model.fp16.onnx"}
FUSED_GRAPHS = {
    "fp32": "multimodal.onnx",
    "int8": "multimodal.int8.onnx",
    "fp16": "multimodal.fp16.onnx",
}
#: The input kinds each graph embeds (its parity items).
KINDS_OF = {"text": ("text",), "fused": ("image", "text+image")}


@dataclass(frozen=True)
class VariantRun:
    """What building a variant needs: the staged fp32 graphs and the parity material."""

    stage: Path
    work: Path
    feeder: Feeder
    items: Mapping[str, Sequence[Side]]
    calibration: Mapping[str, Sequence[Side]]
    fp32: Mapping[str, np.ndarray]  # fp32 graphs' vectors of the parity items, by kind
    pytorch: Mapping[str, np.ndarray]  # the PyTorch model's vectors, by kind

    def graph(self, which: str, variant: str) -> Path:
        """Path of the ``text`` or ``fused`` graph of ``variant`` in the stage."""
        return self.stage / (TEXT_GRAPHS if which == "text" else FUSED_GRAPHS)[variant]

    def score(self, which: str, path: Path) -> float:
        """Min cosine vs fp32 of graph ``path`` (a ``which`` graph) over its kinds."""
        session = onnx_session(path)
        vectors = {k: onnx_embed(session, self.feeder, self.items[k]) for k in KINDS_OF[which]}
        return min(float(compare(v, self.fp32[k]).cosines.min()) for k, v in vectors.items())

    def kept(
        self, name: str, dtype: str, embed: Embed, gate: float, details: dict[str, Any]
    ) -> Variant | None:
        """The variant if every kind reaches ``gate`` vs fp32, else None and a warning."""
        vs_fp32, vectors = compare_kinds(embed, self.fp32, self.items)
        kind, low = vs_fp32.worst()
        if not all(np.isfinite(v).all() for v in vectors.values()) or low < gate:
            warnings.warn(
                f"{name} variant left out: {kind} min cosine vs fp32 {low:.6f} < gate {gate}",
                stacklevel=3,
            )
            for which in ("text", "fused"):
                self.graph(which, name).unlink(missing_ok=True)
            return None
        vs_torch, _ = compare_kinds(lambda k, _sides: vectors[k], self.pytorch, self.items)
        parity = (*vs_fp32.records("fp32", gate), *vs_torch.records("pytorch", None))
        return Variant(name, TEXT_GRAPHS[name], dtype, parity, details, FUSED_GRAPHS[name])


def build_int8(run: VariantRun, gate: float) -> Variant | None:
    """Smooth + quantise both graphs (rescuing layers where needed); gated per kind."""
    details = {
        **_quantize_graph(run, "text", gate),
        "fused_graph": _quantize_graph(run, "fused", gate),
    }
    embed = graphs_embed(run.graph("text", "int8"), run.graph("fused", "int8"), run.feeder)
    return run.kept("int8", "int8", embed, gate, details)


def _quantize_graph(run: VariantRun, which: str, gate: float) -> dict[str, Any]:
    """Quantise one graph into the stage; the manifest details of how."""
    from umr.export.quantize import QuantConfig, quantize, rescue
    from umr.export.smooth import SMOOTH_ALPHA, smooth

    src, out = run.graph(which, "fp32"), run.graph(which, "int8")
    smoothed = run.work / f"{which}.smoothed.onnx"
    calib = [s for k in KINDS_OF[which] for s in run.calibration[k]]
    names = _input_names(src)

    def feeds_of(sides: Sequence[Side]) -> Any:
        return ({n: f[n] for n in names} for f in run.feeder.batches(sides))

    smooth(src, smoothed, feeds_of, calib)
    cfg = QuantConfig()
    quantize(smoothed, out, cfg)
    first = run.score(which, out)
    details: dict[str, Any] = {
        "smoothquant": {"alpha": SMOOTH_ALPHA, "calibration_items": len(calib)}
    }
    if first < gate:
        found = rescue(smoothed, out, cfg, lambda p: run.score(which, p), gate)
        cfg = found.cfg
        details["rescue"] = {"first_min_cosine": round(first, 6), "steps": found.trail}
    return {**cfg.details(), **details}


def _input_names(path: Path) -> list[str]:
    import onnx

    return [i.name for i in onnx.load(str(path), load_external_data=False).graph.input]


def build_fp16(run: VariantRun, gate: float) -> Variant | None:
    """fp16 copies of both graphs, gated on their GPU emulation (see module doc)."""
    import onnx
    from umr.export.fp16 import write_fp16
    from umr.export.fp16_parity import emulate_fp16

    emulated = {}
    details: dict[str, Any] = {}
    for which in ("text", "fused"):
        result = write_fp16(run.graph(which, "fp32"), run.graph(which, "fp16"))
        emulated[which] = run.work / f"{which}.fp16-emulated.onnx"
        onnx.save(emulate_fp16(result.model), str(emulated[which]))
        details[which] = result.details()
    embed = graphs_embed(emulated["text"], emulated["fused"], run.feeder, optimize=False)
    details = {
        **details["text"],
        "fused_graph": details["fused"],
        "parity_method": (
            "onnxruntime CPU on an emulation: fp16-rounded weights, every fp16 tensor "
            "rounded to fp16 after the op that makes it, op internals in fp32"
        ),
    }
    return run.kept("fp16", "float16", embed, gate, details)
