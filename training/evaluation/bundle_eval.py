"""Evaluating an exported bundle exactly as a checkpoint is evaluated (torch-free).

A bundle's recall must stay within :data:`BUNDLE_GATE` of its checkpoint's on every
task and k: the export changed the runtime, not the model.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
from umr.training.data.records import Record, Side

from .recall import EncodeFn, evaluate

#: Largest allowed |bundle - checkpoint| of any R@k on any task.
BUNDLE_GATE = 0.01


def bundle_encoder(embedder: Any, batch_size: int = 64) -> EncodeFn:
    """An :data:`EncodeFn` running an :class:`umr.runtime.Embedder` (instructions on
    queries only, as in training). An image side with an instruction or a text runs
    the fused graph; a bare image runs it with empty text, as the model was trained."""

    def encode(sides: Sequence[Side], is_query: bool) -> np.ndarray:
        out = np.empty((len(sides), embedder.dim), dtype=np.float32)
        groups: dict[tuple[bool, str | None], list[int]] = defaultdict(list)
        for i, s in enumerate(sides):
            groups[(s.image is not None, s.instruction if is_query else None)].append(i)
        for (has_image, instruction), rows in groups.items():
            part = [sides[i] for i in rows]
            if not has_image:
                vecs = embedder.embed_text(
                    [s.text or "" for s in part], instruction=instruction, batch_size=batch_size
                )
            elif instruction is None and all(s.text is None for s in part):
                vecs = embedder.embed_image([s.image for s in part], batch_size=batch_size)
            else:
                vecs = embedder.embed_fused(
                    [s.text or "" for s in part],
                    [s.image for s in part],
                    instruction=instruction,
                    batch_size=batch_size,
                )
            out[rows] = vecs
        return out

    return encode


def evaluate_bundle(
    bundle: str | os.PathLike[str],
    records: Sequence[Record],
    *,
    variant: str = "fp32",
    threads: int | None = None,
) -> dict[str, Any]:
    """``{"tasks", "macro", "sizes"}`` of a bundle's variant on ``records`` (CPU)."""
    from umr.runtime import Embedder

    embedder = Embedder.load(bundle, variant=variant, threads=threads)
    return evaluate(bundle_encoder(embedder), records)


def compare_to_checkpoint(
    bundle: dict[str, Any], checkpoint: dict[str, Any], gate: float = BUNDLE_GATE
) -> dict[str, Any]:
    """The largest recall difference over tasks and k, where it is, and the gate."""
    diffs: list[tuple[float, str | None]] = []
    for task, row in checkpoint["tasks"].items():
        for k, value in row.items():
            got = bundle["tasks"].get(task, {}).get(k)
            diffs.append((float("inf") if got is None else abs(got - value), f"{task} {k}"))
    worst, where = max(diffs, key=lambda d: d[0], default=(0.0, None))
    if worst == 0.0:
        where = "none: equal on every task and k"
    return {
        "max_abs_diff": round(worst, 4),
        "at": where,
        "gate": gate,
        "passed": bool(worst <= gate),
    }
