"""Image input: checking and decoding images, and padded (text, pixels) batches for the fused graph.

Images are decoded and preprocessed by :mod:`umr.images`, the code training used, so the
runtime sees exactly what the model was trained on. Every image of a call is decoded before
anything is embedded: a bad item fails the whole call with an ``ImageError`` naming its index.

The fused graph (``Variant.image_file``) takes the text inputs plus ``pixel_values``; every
row has an image, and an image-only row has the text ``""`` (``[CLS] [SEP]``). Its text side
is tokenized by :class:`~umr.runtime.text_input.TextTokenizer`, like the text graph's.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from umr.runtime.backend import Backend, Plan, open_backend, plan_backend
from umr.runtime.providers import ENGINE
from umr.runtime.text_input import Batch, TextTokenizer
from umr.runtime.trt_engine import ENGINES_KEY, FUSED_KEY, engine_records

from umr.bundle import BundleManifest, Variant
from umr.errors import BundleError, ImageError, InputTypeError, ProviderUnavailableError
from umr.images import ImagePreprocess, open_image, to_model_input

#: Images decoded per worker task: enough to amortise the hand-off, small enough to spread.
_DECODE_CHUNK = 16
#: Rows tokenized and sorted together before being cut into graph calls.
_TOKENIZE_ROWS = 1024


def validate_images(images: Any) -> list[Any]:
    """``images`` as a list of items; a single image passed bare is refused.

    Items are paths (str or ``os.PathLike``), encoded bytes, PIL images or ``HxWxC``
    uint8 arrays; a ``[N, H, W, C]`` uint8 array is N images. Items themselves are
    checked when decoded (:func:`decode_images`).
    """
    bare = isinstance(images, (str, bytes, bytearray, memoryview, os.PathLike))
    if bare or _is_pil(images) or (isinstance(images, np.ndarray) and images.ndim < 4):
        raise InputTypeError(
            f"images must be a list of images, got a bare {type(images).__name__}; "
            f"pass [image] to embed one image"
        )
    if not isinstance(images, Iterable):
        raise InputTypeError(f"images must be a list of images, got {type(images).__name__}")
    return list(images)


def _is_pil(obj: Any) -> bool:
    return type(obj).__module__.startswith("PIL.")


def require_pillow() -> None:
    """Raise a clear ``ModuleNotFoundError`` when Pillow (the ``images`` extra) is missing."""
    try:
        import PIL  # noqa: F401
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            "embedding images needs Pillow: pip install 'umr[images]'", name="PIL"
        ) from None


def decode_images(
    items: list[Any],
    pre: ImagePreprocess,
    *,
    max_pixels: int,
    map_fn: Callable[..., Iterable[Any]] = map,
) -> np.ndarray:
    """Every item as model input, ``float32 [n, 3, size, size]``.

    ``map_fn`` (e.g. a thread pool's ``map``) spreads chunks of items over workers;
    Pillow releases the GIL while it decodes and resizes. Raises ``ImageError`` naming
    ``image i`` for the first bad item (corrupt, truncated, unsupported, over
    ``max_pixels``); nothing is returned partially.
    """
    require_pillow()
    out = np.empty((len(items), 3, pre.size, pre.size), dtype=np.float32)

    def fill(span: range) -> None:
        for i in span:
            out[i] = pixels_of(items[i], pre, max_pixels=max_pixels, name=f"image {i}")

    n, step = len(items), _DECODE_CHUNK
    spans = [range(s, min(s + step, n)) for s in range(0, n, step)]
    for _ in (map if len(spans) < 2 else map_fn)(fill, spans):
        pass  # map yields in order: the lowest failing index is the one reported
    return out


def pixels_of(item: Any, pre: ImagePreprocess, *, max_pixels: int, name: str) -> np.ndarray:
    """One item as ``float32 [3, size, size]``; errors are ``ImageError`` naming ``name``.

    A PIL image opened lazily is decoded here, so its truncation is caught too; arrays
    are held to ``max_pixels`` like files.
    """
    img = open_image(item, max_pixels=max_pixels, name=name)
    if isinstance(item, np.ndarray) and item.shape[0] * item.shape[1] > max_pixels:
        w, h = img.size
        raise ImageError(f"{name}: {w}x{h} pixels exceeds the limit of {max_pixels}")
    try:
        return to_model_input(img, pre)
    except ImageError:
        raise
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"{name}: corrupt, truncated or unsupported image ({exc})") from None


@dataclass(frozen=True)
class ImageGraph:
    """The opened fused graph: feeds, runner, active provider, rows-per-call cap."""

    preprocess: ImagePreprocess
    tokenizer: TextTokenizer  # fills the graph's text inputs
    pixel_input: str
    image_tokens: int
    backend: Backend
    variant: Variant  # the fused graph as a variant (its own file and details)

    def batches(
        self,
        texts: list[str],
        pixels: np.ndarray,
        *,
        instruction: str | None,
        batch_size: int,
        max_tokens: int | None,
    ) -> Iterator[Batch]:
        """Padded batches of at most ``batch_size`` rows, longest texts first;
        ``max_tokens`` bounds the padded tokens of a call, image tokens included."""
        wide = max(batch_size, _TOKENIZE_ROWS)  # tokenized in big sorted runs, then cut
        for run in self.tokenizer.batches(texts, instruction=instruction, batch_size=wide):
            yield from self._split(run, pixels, batch_size, max_tokens)

    def _split(
        self, run: Batch, pixels: np.ndarray, batch_size: int, max_tokens: int | None
    ) -> Iterator[Batch]:
        lengths = run.feeds["attention_mask"].sum(axis=1)  # rows sorted longest first
        start, rows = 0, len(run.rows)
        while start < rows:
            width = int(lengths[start])
            fit = batch_size
            if max_tokens is not None:
                fit = min(fit, max_tokens // (width + self.image_tokens))
            stop = start + max(1, fit)
            feeds = {k: np.ascontiguousarray(v[start:stop, :width]) for k, v in run.feeds.items()}
            feeds[self.pixel_input] = pixels[run.rows[start:stop]]
            yield Batch(run.rows[start:stop], feeds)
            start = stop


def open_image_graph(
    root: Path,
    manifest: BundleManifest,
    variant: str,
    requested: str,
    text: Backend,
    threads: int,
) -> tuple[ImageGraph | None, str | None]:
    """Open ``variant``'s fused graph where the ``text`` graph runs; ``(graph, None)``.

    A text bundle gives ``(None, None)``. The graph is planned like the text graph
    (:func:`umr.runtime.backend.plan_backend`) with the fused graph's inputs and dims, so
    TensorRT gets its own shape profile and cache, and ``"tensorrt-engine"`` runs the
    fused graph's own engine. When ``"tensorrt-engine"`` was ``requested`` and no engine
    of the fused graph fits (none built, or built for another GPU or TensorRT), the
    result is ``(None, why)``: texts still embed, images are refused saying why. When
    ``"auto"`` chose an engine for the text graph, the fused graph takes its engine if
    one fits, else the best ONNX Runtime provider.
    """
    spec, var = manifest.image, manifest.variant(variant)
    if spec is None:
        return None, None
    if not var.image_file:
        raise BundleError(f"{root}: multimodal bundle, but variant {variant!r} has no image_file")
    fused = fused_manifest(manifest, variant)
    if requested == ENGINE:
        plan, why = _engine_plan(root, fused, variant)
        if plan is None:
            return None, why
    else:
        provider = "auto" if text.provider == ENGINE else text.provider
        plan = plan_backend(root, fused, variant, provider)
    backend = open_backend(plan, fused, threads, graph="fused")
    if backend.is_ort:  # an engine checks its own tensors against the manifest
        check_signature(backend.session, fused, root / var.image_file)
    text_inputs = [n for n in spec.inputs if n != spec.pixel_input]
    tokenizer = TextTokenizer.from_file(
        root / manifest.tokenizer, manifest.max_seq_length, text_inputs
    )
    pixel, tokens, fused_var = spec.pixel_input, spec.image_tokens, fused.variant(variant)
    return ImageGraph(spec.preprocess, tokenizer, pixel, tokens, backend, fused_var), None


def _engine_plan(root: Path, fused: BundleManifest, variant: str) -> tuple[Plan | None, str]:
    """The fused graph's engine for this GPU, or None and why images cannot run."""
    if not engine_records(fused.variant(variant)):
        return None, (
            f"provider {ENGINE!r}: the TensorRT engines of variant {variant!r} cover the text "
            "graph only (the bundle has no engine of its fused text+image graph); rebuild "
            "it with `umr export --checkpoint ... --tensorrt`, or load the bundle with "
            "provider='tensorrt' or 'cuda' to embed images"
        )
    try:
        return plan_backend(root, fused, variant, ENGINE), ""
    except ProviderUnavailableError as exc:
        return None, f"the fused text+image graph: {exc}"


def fused_manifest(manifest: BundleManifest, variant: str) -> BundleManifest:
    """``manifest`` as seen by the fused graph of ``variant``: its inputs and dims, its
    file as the variant's only graph.

    The exporter describes the fused graph apart (``details["fused_graph"]``: its
    quantization, batch invariance and TensorRT engines); a variant without that shares
    the variant's details, less its engines (those were built from the text graph).
    """
    spec, var = manifest.image, manifest.variant(variant)
    if spec is None or var.image_file is None:
        raise BundleError(f"bundle {manifest.name!r} variant {variant!r} has no image graph")
    own = var.details.get(FUSED_KEY)
    details = dict(own) if isinstance(own, Mapping) else dict(var.details)
    if not isinstance(own, Mapping):
        details.pop(ENGINES_KEY, None)
    return dataclasses.replace(
        manifest,
        inputs=tuple(spec.inputs),
        input_dims={**manifest.input_dims, **spec.input_dims},
        variants={variant: dataclasses.replace(var, file=var.image_file, details=details)},
    )


def check_signature(session: Any, manifest: BundleManifest, path: Path) -> None:
    """The graph must take exactly ``manifest.inputs`` and produce its ``output`` of ``dim``."""
    inputs = sorted(i.name for i in session.get_inputs())
    outputs = [o for o in session.get_outputs() if o.name == manifest.output]
    if inputs != sorted(manifest.inputs):
        raise BundleError(f"{path}: graph inputs {inputs} differ from the manifest's")
    if not outputs:
        raise BundleError(f"{path}: graph has no output named {manifest.output!r}")
    dim = outputs[0].shape[-1] if outputs[0].shape else None
    if isinstance(dim, int) and dim != manifest.dim:
        raise BundleError(
            f"{path}: output {manifest.output!r} has dim {dim}, manifest says {manifest.dim}"
        )
