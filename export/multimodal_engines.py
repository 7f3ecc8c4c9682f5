"""TensorRT engines of a multimodal bundle's fp16 variant: one of the text graph, one of the
fused text+image graph.

Each graph gets its own engine and shape profile (:mod:`umr.runtime.trt_profile`: the
text graph's from its input dims, the fused graph's from the bundle's ``ImageInput``
with pixels fixed at the preprocessed size). Both are built on this GPU by
:mod:`umr.export.tensorrt_engine` and checked there against the fp32 ONNX graphs' vectors
of the parity items of their kinds (text; image and text+image) with the fp16 gate. The
text engine is listed in the variant's ``details["tensorrt_engines"]``, the fused one in
``details["fused_graph"]["tensorrt_engines"]``: the runtime finds each graph's engine
where it finds that graph's other details (:func:`umr.runtime.image_input.fused_manifest`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from umr.export import tensorrt_engine as te
from umr.export.multimodal_variants import KINDS_OF, VariantRun
from umr.runtime.trt_profile import ShapeProfile

from umr.bundle import Variant
from umr.errors import ExportError


def add_engines(
    run: VariantRun,
    fp16: Variant | None,
    profiles: dict[str, ShapeProfile],
    output: str,
    gate: float,
) -> Variant:
    """``fp16`` with an engine of each of its graphs (``profiles``: ``"text"`` and
    ``"fused"``), built and checked on this GPU; ``ExportError`` under ``gate``."""
    if fp16 is None:
        raise ExportError("the TensorRT engines are built from the fp16 variant, which failed")
    gpu = te.require_engine_build()
    variant = fp16
    for which in ("text", "fused"):
        profile, kinds = profiles[which], KINDS_OF[which]
        feeds = [f for k in kinds for f in run.feeder.batches(run.items[k], profile.max_batch)]
        expected = np.concatenate([run.fp32[k] for k in kinds])
        onnx_file = run.graph(which, "fp16").name
        entry, cos = te.checked_engine(
            run.stage, onnx_file, profile, output, feeds, expected, gate, gpu
        )
        entry["parity"] = {
            **te.engine_parity(cos, gate),
            "by_kind": _by_kind(cos, kinds, [len(run.items[k]) for k in kinds], gate),
        }
        variant = te.with_engine(variant, entry, fused=which == "fused")
    return variant


def _by_kind(
    cos: np.ndarray, kinds: Sequence[str], counts: Sequence[int], gate: float
) -> dict[str, Any]:
    """Per-kind parity (``fp32:image``, ...) of cosines laid out kind after kind."""
    ends = np.cumsum(counts)
    return {
        kind: te.engine_parity(cos[end - n : end], gate, f"fp32:{kind}")
        for kind, n, end in zip(kinds, counts, ends, strict=True)
    }
