"""Analytic FLOP count of a BERT-style encoder over real (unpadded) token counts.

Per layer, for one sequence of ``L`` tokens, hidden size ``h`` and FFN size ``i``,
counted as multiply-adds (MACs) of the matrix products only:

- Q, K, V and output projections: ``4 * L * h * h``
- attention scores ``Q @ K^T`` and ``probs @ V`` (all heads together): ``2 * L * L * h``
- feed-forward up and down projections: ``2 * L * h * i``

One MAC is two floating-point operations, so FLOPs per layer are
``8*L*h^2 + 4*L*h*i + 4*L^2*h``; with the usual ``i = 4h`` that is the textbook
``24*L*h^2 + 4*L^2*h``. Embedding lookups, layer norms, softmax, GELU and pooling
are lower order (O(L*h)) and left out, so the count slightly understates the work.
Padding tokens are not counted: the figure is *useful* work per second.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from umr.errors import InputValueError, ManifestError


@dataclass(frozen=True)
class EncoderShape:
    """The sizes of a transformer encoder that determine its FLOPs."""

    layers: int
    hidden: int
    intermediate: int

    def __post_init__(self) -> None:
        for name in ("layers", "hidden", "intermediate"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise InputValueError(f"EncoderShape.{name}={value!r}; expected a positive int")

    @classmethod
    def from_config(cls, path: str | os.PathLike[str]) -> EncoderShape:
        """Read layers, hidden and intermediate sizes from a Hugging Face config.json."""
        try:
            cfg = json.loads(Path(path).read_text(encoding="utf-8"))
            return cls(
                layers=int(cfg["num_hidden_layers"]),
                hidden=int(cfg["hidden_size"]),
                intermediate=int(cfg["intermediate_size"]),
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ManifestError(f"{path}: not a usable encoder config.json ({exc!r})") from None


def flops_per_sequence(shape: EncoderShape, length: int) -> int:
    """FLOPs (2 per multiply-add) of the encoder's matmuls for one sequence of ``length``."""
    if length < 0:
        raise InputValueError(f"sequence length {length}; expected >= 0")
    h, i, n = shape.hidden, shape.intermediate, length
    per_layer = 8 * n * h * h + 4 * n * h * i + 4 * n * n * h
    return shape.layers * per_layer


def flops_for_lengths(shape: EncoderShape, lengths: Iterable[int]) -> int:
    """Total FLOPs over many sequences, each counted at its own unpadded length."""
    return sum(flops_per_sequence(shape, n) for n in lengths)
