"""Vectors of text-only sides computed once per stage, for speed and for more negatives.

With the backbone frozen, a text-only side's vector never changes, so it is looked up
instead of recomputed (exact). The *bank* holds every distinct text candidate of the
training pool; appended to each batch's candidates it turns "which of 64 in-batch
names?" into "which of all ~6,000 names?" for image-to-text queries: a much stronger
signal per step. In a LoRA stage the bank is refreshed when the stage starts and goes
slightly stale as the adapters move; it only supplies negatives (the positive is
always the in-batch, differentiable one).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .data.records import Record, Side
from .encode import encode_sides
from .image_cache import ImageCache
from .model.encoder import UmrEncoder
from .model.text_batch import TextBatcher


def text_sides(records: Sequence[Record]) -> list[Side]:
    """Distinct texts to look up (with their instructions): every text-only side, and the
    text part of every text+image side, which score fusion pools on its own."""
    seen: dict[tuple, Side] = {}
    for r in records:
        for s in (r.query, r.positive, *r.negatives):
            if s.text is not None:
                seen.setdefault((s.text, s.instruction), Side(s.text, None, s.instruction))
    return list(seen.values())


def text_candidates(records: Sequence[Record]) -> list[Side]:
    """Distinct text-only candidates (positives), keyed by content."""
    seen: dict[tuple, Side] = {}
    for r in records:
        if r.positive.image is None:
            seen.setdefault(r.positive.key, r.positive)
    return list(seen.values())


class TextBank:
    """Text vectors by (text, instruction), and the candidate bank with its key index."""

    def __init__(self) -> None:
        self.lookup: dict[tuple, torch.Tensor] = {}
        self.keys: list[tuple] = []
        self.index: dict[tuple, int] = {}
        self.vectors: torch.Tensor | None = None

    def fill_lookup(
        self, model: UmrEncoder, sides: Sequence[Side], batcher: TextBatcher, cache: ImageCache
    ) -> None:
        vecs = torch.from_numpy(encode_sides(model, sides, batcher, cache, text_only=True))
        self.lookup = {(s.text, s.instruction): vecs[i] for i, s in enumerate(sides)}

    def set_bank(self, keys: list[tuple], vectors: torch.Tensor) -> None:
        self.keys, self.vectors = keys, vectors
        self.index = {k: i for i, k in enumerate(keys)}

    def fill_bank(
        self, model: UmrEncoder, sides: Sequence[Side], batcher: TextBatcher, cache: ImageCache
    ) -> None:
        vecs = encode_sides(model, sides, batcher, cache, use_instructions=False, text_only=True)
        vecs = torch.from_numpy(vecs)
        self.set_bank([s.key for s in sides], vecs)

    def mask(self, rights: Sequence[set], text_answers: Sequence[bool]) -> torch.Tensor:
        """``[len(rights), bank]``: True where a bank entry is masked for that query.

        Only queries whose answer is a text compete against the bank; for the others
        every entry is masked: an image query's own name is in the bank, and pushing
        images away from names (their own among them) pulls the modalities apart.
        """
        out = torch.zeros((len(rights), len(self.keys)), dtype=torch.bool)
        for i, (right, text) in enumerate(zip(rights, text_answers, strict=True)):
            if not text:
                out[i] = True
                continue
            for key in right:
                j = self.index.get(key)
                if j is not None:
                    out[i, j] = True
        return out
