"""The multimodal engines under test, behind one interface: ``image(paths, batch_size)`` and
``fused(texts, paths, instruction, batch_size)``.

- ``torch``: the trained PyTorch model (``umr.training.checkpoint.load_checkpoint``), eval
  mode, fp32, its LoRA adapters merged as in the exported bundle, ``threads`` intra-op
  threads. Inputs go through the training code's own feeds (``TextBatcher``) and the
  shared image preprocessing (:func:`umr.images.preprocess`), so both sides pay the same
  decoding and resizing. Imports torch: it only runs in its own worker process.
- ``fp32`` / ``int8``: :class:`umr.runtime.Embedder` with that bundle variant (ONNX Runtime).
"""

from __future__ import annotations

import os
from typing import Protocol

import numpy as np

from umr.errors import InputValueError

VARIANTS = ("fp32", "int8")
ENGINES = ("torch", *VARIANTS)


class MultimodalEngine(Protocol):
    """Anything that embeds images and text+image pairs into unit float32 vectors."""

    name: str
    implementation: str

    def image(self, paths: list[str], batch_size: int) -> np.ndarray:
        """``[len(paths), dim]`` vectors of images."""
        ...

    def fused(
        self, texts: list[str], paths: list[str], instruction: str | None, batch_size: int
    ) -> np.ndarray:
        """``[len(texts), dim]`` vectors of (text, image) pairs under ``instruction``."""
        ...


class TorchEngine:
    """The PyTorch reference: the trained checkpoint on the CPU, no gradients."""

    name = "torch"

    def __init__(self, checkpoint: str, threads: int) -> None:
        import torch
        from umr.training.checkpoint import load_checkpoint
        from umr.training.model.build import has_lora, merge_lora
        from umr.training.model.text_batch import TextBatcher

        torch.set_num_threads(threads)
        model = load_checkpoint(checkpoint).eval().float()
        merged = has_lora(model)
        if merged:
            merge_lora(model)
        self.model = model
        self.batcher = TextBatcher(model.backbone_dir / "tokenizer.json", model.cfg.max_text_tokens)
        self.pre = model.cfg.image
        self._torch = torch
        lora = ", LoRA merged" if merged else ""
        self.implementation = (
            f"PyTorch {torch.__version__} load_checkpoint({checkpoint!r}), eval, fp32{lora}, "
            f"{threads} threads"
        )

    def image(self, paths: list[str], batch_size: int) -> np.ndarray:
        """Images alone: the text side is empty (``[CLS] [SEP]``), as in training."""
        return self.fused([""] * len(paths), paths, None, batch_size)

    def fused(
        self, texts: list[str], paths: list[str], instruction: str | None, batch_size: int
    ) -> np.ndarray:
        """Pairs in batches of ``batch_size``, under ``torch.inference_mode``."""
        from umr.images import preprocess

        torch = self._torch
        out = []
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                chunk = texts[start : start + batch_size]
                feeds = self.batcher.encode(chunk, [instruction] * len(chunk))
                pixels = preprocess(paths[start : start + batch_size], self.pre)
                feeds["pixels"] = torch.from_numpy(pixels)
                feeds["has_image"] = torch.ones(len(chunk), dtype=torch.bool)
                out.append(self.model(**feeds).numpy())
        return np.concatenate(out).astype(np.float32, copy=False)


class UmrEngine:
    """:class:`umr.runtime.Embedder` with one bundle variant on the CPU provider."""

    def __init__(self, bundle: str | os.PathLike[str], variant: str, threads: int) -> None:
        from umr.runtime import Embedder

        self.name = variant
        self.embedder = Embedder.load(bundle, variant=variant, provider="cpu", threads=threads)
        self.implementation = f"umr.runtime.Embedder variant={variant} (ONNX Runtime)"

    def image(self, paths: list[str], batch_size: int) -> np.ndarray:
        """Through the public API, exactly as a user would."""
        return self.embedder.embed_image(paths, batch_size=batch_size)

    def fused(
        self, texts: list[str], paths: list[str], instruction: str | None, batch_size: int
    ) -> np.ndarray:
        """Through the public API, exactly as a user would."""
        return self.embedder.embed_fused(
            texts, paths, instruction=instruction, batch_size=batch_size
        )


def make_engine(name: str, bundle: str, threads: int, checkpoint: str) -> MultimodalEngine:
    """Build the engine called ``name`` (one of :data:`ENGINES`)."""
    if name == "torch":
        return TorchEngine(checkpoint, threads)
    if name in VARIANTS:
        return UmrEngine(bundle, name, threads)
    raise InputValueError(f"engine {name!r} unknown; expected one of {ENGINES}")
