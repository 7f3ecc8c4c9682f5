"""Embed parity items with the PyTorch model and with the bundle's graphs, and compare.

Both sides get the same feeds, built the way training and evaluation build them
(:class:`umr.training.model.text_batch.TextBatcher`: ``[CLS] [instruction] [text] [SEP]``,
instruction tokens zero in ``pool_mask``; an image-only row is ``[CLS] [SEP]``) and
:func:`umr.images.preprocess`. Text rows go to the text graph; image and text+image rows
to the fused graph. Parity records name the kind (``pytorch:image``, ``fp32:text+image``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from umr.export.parity import Comparison, compare, onnx_session
from umr.training.data.records import Side

from umr.bundle import Parity
from umr.errors import ExportError, ParityError
from umr.images import ImagePreprocess, preprocess

BATCH = 16


class Feeder:
    """Padded numpy feeds for sides: ``input_ids``, ``attention_mask``, ``pool_mask``,
    ``token_type_ids`` (zeros) and, when the sides have images, ``pixel_values``."""

    def __init__(self, tokenizer_json: Path, max_tokens: int, pre: ImagePreprocess) -> None:
        from umr.training.model.text_batch import TextBatcher

        self.batcher = TextBatcher(tokenizer_json, max_tokens)
        self.pre = pre

    def feeds(self, sides: Sequence[Side]) -> dict[str, np.ndarray]:
        """One padded batch of ``sides`` (all with images, or none)."""
        enc = self.batcher.encode([s.text for s in sides], [s.instruction for s in sides])
        names = ("input_ids", "attention_mask", "pool_mask")
        out = {k: enc[k].numpy().astype(np.int64) for k in names}
        out["token_type_ids"] = np.zeros_like(out["input_ids"])
        images = [s.image for s in sides]
        if any(i is not None for i in images):
            if any(i is None for i in images):
                raise ExportError("a parity batch mixes items with and without images")
            out["pixel_values"] = preprocess(images, self.pre)
        return out

    def batches(self, sides: Sequence[Side], size: int = BATCH) -> Iterator[dict[str, np.ndarray]]:
        """:meth:`feeds` of consecutive slices of ``sides``."""
        for start in range(0, len(sides), size):
            yield self.feeds(sides[start : start + size])


def torch_embed(model: Any, feeder: Feeder, sides: Sequence[Side]) -> np.ndarray:
    """The PyTorch model's unit vectors of ``sides`` (fp32, eval mode, no gradients)."""
    import torch

    out = []
    with torch.no_grad():
        for f in feeder.batches(sides):
            kw = {k: torch.from_numpy(f[k]) for k in ("input_ids", "attention_mask", "pool_mask")}
            # has_text only matters to score fusion; the fused graph is early fusion.
            kw["has_text"] = torch.ones(len(f["input_ids"]), dtype=torch.bool)
            if "pixel_values" in f:
                kw["pixels"] = torch.from_numpy(f["pixel_values"])
                kw["has_image"] = torch.ones(len(f["input_ids"]), dtype=torch.bool)
            out.append(model(**kw).float().numpy())
    return np.concatenate(out)


def onnx_embed(
    session: Any, feeder: Feeder, sides: Sequence[Side], size: int = BATCH
) -> np.ndarray:
    """A graph's vectors of ``sides`` in batches of ``size`` (feeds named as its inputs)."""
    names = [i.name for i in session.get_inputs()]
    out = [session.run(None, {n: f[n] for n in names})[0] for f in feeder.batches(sides, size)]
    return np.concatenate(out).astype(np.float32)


@dataclass(frozen=True)
class KindParity:
    """One comparison per input kind (``text``, ``image``, ``text+image``)."""

    by_kind: Mapping[str, Comparison]

    def records(self, reference: str, gate: float | None) -> tuple[Parity, ...]:
        """Manifest records, references named ``<reference>:<kind>``."""
        return tuple(c.parity(f"{reference}:{k}", gate) for k, c in self.by_kind.items())

    def worst(self) -> tuple[str, float]:
        """The kind with the lowest min cosine, and that cosine."""
        kind = min(self.by_kind, key=lambda k: float(self.by_kind[k].cosines.min()))
        return kind, float(self.by_kind[kind].cosines.min())

    def require(self, gate: float, items: Mapping[str, Sequence[Side]], what: str) -> None:
        """Raise ParityError naming the kind, the item and the cosine of the worst miss."""
        for kind, comp in self.by_kind.items():
            i = comp.worst
            if comp.cosines[i] < gate:
                side = items[kind][i]
                raise ParityError(
                    f"{what}: {kind} min cosine {comp.cosines[i]:.6f} < gate {gate} on item "
                    f"#{i} (text {_short(side.text)}, image {side.image}, instruction "
                    f"{_short(side.instruction)}; mean {comp.cosines.mean():.6f} over "
                    f"{len(comp.cosines)} items)"
                )


def _short(text: str | None) -> str:
    if text is None or len(text) <= 60:
        return repr(text)
    return repr(text[:57] + "...")


Embed = Callable[[str, Sequence[Side]], np.ndarray]


def graphs_embed(
    text_graph: Path, fused_graph: Path, feeder: Feeder, *, optimize: bool = True
) -> Embed:
    """``embed(kind, sides)`` with a variant's two graphs (one CPU session each; graph
    optimisations off with ``optimize=False``, for emulation graphs whose Casts must stay)."""
    open_ = onnx_session if optimize else _plain_session
    sessions = {"text": open_(text_graph), "fused": open_(fused_graph)}

    def embed(kind: str, sides: Sequence[Side]) -> np.ndarray:
        return onnx_embed(sessions["text" if kind == "text" else "fused"], feeder, sides)

    return embed


def _plain_session(path: Path) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.intra_op_num_threads = 2
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def compare_kinds(
    embed: Embed, reference: Mapping[str, np.ndarray], items: Mapping[str, Sequence[Side]]
) -> tuple[KindParity, dict[str, np.ndarray]]:
    """Embed each kind's items with ``embed``: the comparison with ``reference``, the vectors."""
    vectors = {kind: embed(kind, sides) for kind, sides in items.items()}
    comps = {kind: compare(vectors[kind], reference[kind]) for kind in items}
    return KindParity(comps), vectors


def batch_invariance(
    embed: Embed, batched: Mapping[str, np.ndarray], items: Mapping[str, Sequence[Side]]
) -> float:
    """Min cosine, over the first batch of each kind, of each item embedded alone vs in its
    padded batch (``batched``: ``embed``'s vectors of ``items`` in batches of :data:`BATCH`)."""
    low = 1.0
    for kind, sides in items.items():
        k = min(len(sides), BATCH)
        alone = np.concatenate([embed(kind, [s]) for s in sides[:k]])
        low = min(low, float(compare(alone, batched[kind][:k]).cosines.min()))
    return low
