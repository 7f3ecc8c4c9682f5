"""TensorRT shape profiles and engine-cache keys, derived from a bundle's manifest.

A TensorRT engine is built for a range of input shapes (min/opt/max per input) on one
GPU with one TensorRT version; outside that, it must be rebuilt. The profile comes
from the manifest, never from hard-coded input names: every input has dims (recorded
by the exporter in ``manifest.input_dims``; a bundle without them is a text bundle,
``[batch, sequence]`` per input). The first dim is the batch, other named dims are
sequence-like (up to ``max_seq_length``), numbers are fixed (an image's 3x224x224).
A fused text+image graph's pixel input is always fixed at the bundle's preprocessed size
(``ImageInput.preprocess.size``), whatever its recorded dims call those axes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from umr.bundle import BundleManifest, ImageInput
from umr.errors import ManifestError

#: Batch rows per call a GPU profile is tuned for and accepts. The Embedder's default
#: batch is 32 texts; 64 leaves room for callers who ask for more (larger calls are split).
OPT_BATCH, MAX_BATCH = 32, 64
#: Sequence length TensorRT tunes kernels for: most queries and passages are under it.
OPT_SEQ = 128
TEXT_DIMS: tuple[str, ...] = ("batch", "sequence")

Shape = tuple[int, ...]


@dataclass(frozen=True)
class ShapeProfile:
    """min/opt/max shape of each input, in input order."""

    shapes: tuple[tuple[str, Shape, Shape, Shape], ...]

    @property
    def max_batch(self) -> int:
        """The most rows one call may carry."""
        return min(mx[0] for _, _, _, mx in self.shapes)

    def ort_options(self) -> dict[str, str]:
        """The ORT TensorRT EP's ``trt_profile_{min,opt,max}_shapes`` options."""
        return {
            f"trt_profile_{kind}_shapes": ",".join(
                f"{name}:{'x'.join(str(d) for d in shape[i])}" for name, *shape in self.shapes
            )
            for i, kind in enumerate(("min", "opt", "max"))
        }

    def to_json(self) -> dict[str, list[list[int]]]:
        """``{input: [min, opt, max]}`` for manifests and cache keys."""
        return {name: [list(mn), list(opt), list(mx)] for name, mn, opt, mx in self.shapes}

    @classmethod
    def from_json(cls, obj: Mapping[str, Sequence[Sequence[int]]]) -> ShapeProfile:
        """The inverse of :meth:`to_json`."""
        return cls(tuple((n, *(tuple(int(d) for d in s) for s in v)) for n, v in obj.items()))  # type: ignore[misc]


def build_profile(
    inputs: Sequence[str],
    dims: Mapping[str, Sequence[str | int]],
    max_seq_length: int,
    *,
    opt_batch: int = OPT_BATCH,
    max_batch: int = MAX_BATCH,
    opt_seq: int = OPT_SEQ,
) -> ShapeProfile:
    """The profile of ``inputs`` (dims default to ``[batch, sequence]``)."""
    if not 1 <= opt_batch <= max_batch:
        raise ValueError(f"need 1 <= opt_batch <= max_batch, got {opt_batch}, {max_batch}")
    seq = (1, min(opt_seq, max_seq_length), max_seq_length)
    batch = (1, opt_batch, max_batch)
    shapes = []
    for name in inputs:
        spec = tuple(dims.get(name, TEXT_DIMS))
        if not spec:
            raise ValueError(f"input {name!r} has no dims; a batch dim is required")
        ranges = [batch] + [seq if isinstance(d, str) else (int(d),) * 3 for d in spec[1:]]
        shapes.append((name, *(tuple(r[i] for r in ranges) for i in range(3))))
    return ShapeProfile(tuple(shapes))  # type: ignore[arg-type]


def profile_for(manifest: BundleManifest, **kwargs: int) -> ShapeProfile:
    """The profile of a bundle's inputs (``kwargs`` as in :func:`build_profile`).

    A manifest whose inputs include the image's pixel input (the fused graph's view, see
    :func:`umr.runtime.image_input.fused_manifest`) gets that input's fixed shape.
    """
    dims = dict(manifest.input_dims)
    spec = manifest.image
    if spec is not None and spec.pixel_input in manifest.inputs:
        dims[spec.pixel_input] = pixel_dims(spec)
    return build_profile(manifest.inputs, dims, manifest.max_seq_length, **kwargs)


def image_profile(spec: ImageInput, max_seq_length: int, **kwargs: int) -> ShapeProfile:
    """The profile of a fused text+image graph: its text inputs up to ``max_seq_length``,
    its pixel input fixed (:func:`pixel_dims`); ``kwargs`` as in :func:`build_profile`."""
    dims = {**spec.input_dims, spec.pixel_input: pixel_dims(spec)}
    return build_profile(spec.inputs, dims, max_seq_length, **kwargs)


def pixel_dims(spec: ImageInput) -> tuple[str | int, ...]:
    """``(batch, 3, size, size)`` of the pixel input, from the image preprocessing; a
    recorded fixed dim that disagrees with it is a ``ManifestError`` (a broken bundle)."""
    size = spec.preprocess.size
    recorded = tuple(spec.input_dims.get(spec.pixel_input, ()))
    batch = recorded[0] if recorded else "batch"
    fixed = (3, size, size)
    clash = len(recorded) not in (0, 4) or any(
        isinstance(r, int) and r != f for r, f in zip(recorded[1:], fixed, strict=False)
    )
    if clash:
        raise ManifestError(
            f"image input {spec.pixel_input!r} has dims {list(recorded)}, but images are "
            f"preprocessed to {list(fixed)} per item"
        )
    return (batch, *fixed)


def cache_key(
    model_sha256: str,
    gpu_name: str,
    profile: ShapeProfile,
    versions: Mapping[str, str | None] | None = None,
    *,
    label: str = "",
) -> str:
    """The engine-cache directory name for one model on one GPU with one profile.

    ``versions`` (e.g. ``{"tensorrt": "10.13", "onnxruntime-gpu": "1.23"}``) goes into
    the key too: a serialized engine only loads into the TensorRT it was built with.
    ``label`` (the bundle name) only prefixes the key so people can tell caches apart.
    """
    material = json.dumps(
        {
            "model": model_sha256,
            "gpu": gpu_name,
            "profile": profile.to_json(),
            "versions": dict(sorted((versions or {}).items())),
        },
        sort_keys=True,
    )
    digest = hashlib.sha256(material.encode()).hexdigest()[:24]
    prefix = re.sub(r"[^A-Za-z0-9._-]+", "-", label).strip("-.")[:48]
    return f"{prefix}-{digest}" if prefix else digest


def default_cache_root() -> Path:
    """``$UMR_CACHE_DIR/tensorrt``, else ``~/.cache/umr/tensorrt``."""
    root = os.environ.get("UMR_CACHE_DIR") or Path.home() / ".cache" / "umr"
    return Path(root) / "tensorrt"
