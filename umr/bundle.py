"""The bundle format: a directory of ONNX files, tokenizer files and ``umr.json``.

``umr.json`` is described by the frozen dataclasses below. Export writes it, the
runtime reads it; nothing else crosses that boundary. Every file the bundle holds
is listed with its sha256 and is verified before it is trusted.

A multimodal bundle adds ``image`` (:class:`ImageInput`: how images are preprocessed and
what the fused text+image graph takes) and, per variant, ``image_file`` (that graph).
Text-only bundles leave both out (``null``) and parse as before.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from umr.errors import BundleError, ChecksumError, ManifestError, UnknownVariantError
from umr.images import ImagePreprocess

MANIFEST_NAME = "umr.json"
FORMAT_VERSION = 1
POOLING_MODES = ("mean", "cls", "last")


@dataclass(frozen=True)
class Parity:
    """How closely one variant's embeddings match a reference, measured at export.

    Cosines are per text between the variant's vector and the reference's vector.
    """

    reference: str
    n_texts: int
    min_cosine: float
    mean_cosine: float
    gate: float | None = None
    passed: bool = True


@dataclass(frozen=True)
class Variant:
    """One ONNX graph of the bundle (``fp32``, ``int8``, ...); ``image_file`` is the same
    variant's fused text+image graph in a multimodal bundle (None in text bundles)."""

    name: str
    file: str
    dtype: str
    parity: tuple[Parity, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)
    image_file: str | None = None

    def parity_against(self, reference: str) -> Parity | None:
        """The parity record measured against ``reference``, if any."""
        return next((p for p in self.parity if p.reference == reference), None)


@dataclass(frozen=True)
class ImageInput:
    """What a multimodal bundle's fused graph takes (manifest field ``image``).

    Every row of the fused graph has an image; an image-only row uses the text ``""``
    (``[CLS] [SEP]``). The graph inserts ``image_tokens`` image tokens after position 0.
    """

    preprocess: ImagePreprocess
    inputs: tuple[str, ...]
    image_tokens: int
    pixel_input: str = "pixel_values"
    #: Dims of each fused-graph input, like :attr:`BundleManifest.input_dims`.
    input_dims: Mapping[str, tuple[str | int, ...]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The JSON form (``preprocess`` as :meth:`ImagePreprocess.to_dict`)."""
        return {
            "preprocess": self.preprocess.to_dict(),
            "inputs": list(self.inputs),
            "pixel_input": self.pixel_input,
            "image_tokens": self.image_tokens,
            "input_dims": {k: list(v) for k, v in self.input_dims.items()},
        }


@dataclass(frozen=True)
class BundleManifest:
    """Everything the runtime needs to know about a bundle, read from ``umr.json``."""

    name: str
    dim: int
    pooling: str
    normalize: bool
    max_seq_length: int
    inputs: tuple[str, ...]
    output: str
    tokenizer: str
    variants: Mapping[str, Variant]
    files: Mapping[str, str]
    modalities: tuple[str, ...] = ("text",)
    source: Mapping[str, Any] = field(default_factory=dict)
    created_by: str = ""
    format_version: int = FORMAT_VERSION
    #: Dims of each input, e.g. ``{"input_ids": ("batch", "sequence")}``: names are
    #: dynamic, ints fixed. Optional (older bundles: ``[batch, sequence]`` per input);
    #: TensorRT shape profiles are derived from it (:mod:`umr.runtime.trt_profile`).
    input_dims: Mapping[str, tuple[str | int, ...]] = field(default_factory=dict)
    #: The fused graph's inputs and image preprocessing; None for a text-only bundle.
    image: ImageInput | None = None

    def variant(self, name: str) -> Variant:
        """The variant called ``name``; the error lists the variants that exist."""
        try:
            return self.variants[name]
        except KeyError:
            have = ", ".join(sorted(self.variants)) or "none"
            raise UnknownVariantError(
                f"variant {name!r} is not in bundle {self.name!r}; it has: {have}"
            ) from None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (the exact content of ``umr.json``)."""
        out = asdict(self)
        out["variants"] = {k: asdict(v) for k, v in self.variants.items()}
        out["files"] = dict(sorted(self.files.items()))
        out["image"] = None if self.image is None else self.image.to_json()
        return out

    @classmethod
    def from_json(cls, obj: Any, *, where: str = MANIFEST_NAME) -> BundleManifest:
        """Validate and build a manifest from parsed JSON; errors name the bad field."""
        return _parse_manifest(obj, where)


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_manifest(bundle_dir: str | os.PathLike[str]) -> BundleManifest:
    """Read and validate ``umr.json`` of a bundle directory."""
    root = Path(bundle_dir)
    if not root.is_dir():
        raise BundleError(f"bundle directory not found: {root}")
    path = root / MANIFEST_NAME
    if not path.is_file():
        raise BundleError(f"{root} is not a umr bundle: {MANIFEST_NAME} is missing")
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{path}: not valid UTF-8 JSON ({exc})") from None
    return BundleManifest.from_json(obj, where=str(path))


def verify_files(
    bundle_dir: str | os.PathLike[str],
    manifest: BundleManifest,
    names: Iterable[str] | None = None,
) -> None:
    """Check the sha256 of ``names`` (default: every listed file) against the manifest.

    Raises ``ChecksumError`` naming the first file that is missing or differs.
    """
    root = Path(bundle_dir)
    for name in sorted(manifest.files) if names is None else names:
        expected = manifest.files.get(name)
        if expected is None:
            raise ChecksumError(f"{root / name}: not listed in {MANIFEST_NAME}; cannot trust it")
        path = root / name
        if not path.is_file():
            raise ChecksumError(f"{path}: listed in {MANIFEST_NAME} but missing")
        actual = sha256_file(path)
        if actual != expected:
            raise ChecksumError(
                f"{path}: sha256 {actual[:16]}... does not match the manifest's "
                f"{expected[:16]}... (file tampered with or corrupt)"
            )


# --- parsing -----------------------------------------------------------------------------


def _need(obj: Mapping[str, Any], key: str, typ: type | tuple[type, ...], where: str) -> Any:
    if key not in obj:
        raise ManifestError(f"{where}: missing field {key!r}")
    value = obj[key]
    if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        raise ManifestError(f"{where}: field {key!r} has type {type(value).__name__}")
    return value


def _safe_relpath(name: Any, where: str) -> str:
    """Reject names that could escape the bundle directory."""
    if not isinstance(name, str) or not name:
        raise ManifestError(f"{where}: file name {name!r} is not a non-empty string")
    p = PurePosixPath(name)
    if p.is_absolute() or ".." in p.parts or "\\" in name:
        raise ManifestError(f"{where}: file name {name!r} points outside the bundle")
    return name


def _parse_parity(obj: Any, where: str) -> Parity:
    if not isinstance(obj, dict):
        raise ManifestError(f"{where}: parity entry is not an object")
    gate = obj.get("gate")
    return Parity(
        reference=_need(obj, "reference", str, where),
        n_texts=_need(obj, "n_texts", int, where),
        min_cosine=float(_need(obj, "min_cosine", (int, float), where)),
        mean_cosine=float(_need(obj, "mean_cosine", (int, float), where)),
        gate=None if gate is None else float(gate),
        passed=bool(obj.get("passed", True)),
    )


def _parse_variant(key: str, obj: Any, where: str) -> Variant:
    w = f"{where}: variants.{key}"
    if not isinstance(obj, dict):
        raise ManifestError(f"{w} is not an object")
    parity = _need(obj, "parity", list, w) if "parity" in obj else []
    return Variant(
        name=key,
        file=_safe_relpath(_need(obj, "file", str, w), w),
        dtype=_need(obj, "dtype", str, w),
        parity=tuple(_parse_parity(p, w) for p in parity),
        details=dict(obj.get("details") or {}),
        image_file=None if obj.get("image_file") is None else _safe_relpath(obj["image_file"], w),
    )


def _parse_manifest(obj: Any, where: str) -> BundleManifest:
    if not isinstance(obj, dict):
        raise ManifestError(f"{where}: top level is not a JSON object")
    version = _need(obj, "format_version", int, where)
    if version != FORMAT_VERSION:
        raise ManifestError(
            f"{where}: format_version {version} is not supported (this umr reads {FORMAT_VERSION})"
        )
    pooling = _need(obj, "pooling", str, where)
    if pooling not in POOLING_MODES:
        raise ManifestError(f"{where}: pooling {pooling!r} is not one of {POOLING_MODES}")
    files = _need(obj, "files", dict, where)
    for name, digest in files.items():
        _safe_relpath(name, where)
        if not (isinstance(digest, str) and len(digest) == 64):
            raise ManifestError(f"{where}: files.{name} is not a sha256 hex digest")
    variants = {
        k: _parse_variant(k, v, where) for k, v in _need(obj, "variants", dict, where).items()
    }
    if not variants:
        raise ManifestError(f"{where}: no variants")
    image = _parse_image(obj.get("image"), where)
    for v in variants.values():
        _check_variant_files(v, files, image, where)
    dim, max_len = _need(obj, "dim", int, where), _need(obj, "max_seq_length", int, where)
    if dim <= 0 or max_len <= 0:
        raise ManifestError(f"{where}: dim and max_seq_length must be positive")
    return BundleManifest(
        name=_need(obj, "name", str, where),
        dim=dim,
        pooling=pooling,
        normalize=_need(obj, "normalize", bool, where),
        max_seq_length=max_len,
        inputs=tuple(_need(obj, "inputs", list, where)),
        output=_need(obj, "output", str, where),
        tokenizer=_safe_relpath(_need(obj, "tokenizer", str, where), where),
        variants=variants,
        files=dict(files),
        modalities=tuple(obj.get("modalities", ("text",))),
        source=dict(obj.get("source") or {}),
        created_by=str(obj.get("created_by", "")),
        format_version=version,
        input_dims=_parse_input_dims(obj.get("input_dims") or {}, where),
        image=image,
    )


def _check_variant_files(
    v: Variant, files: Mapping[str, str], image: ImageInput | None, where: str
) -> None:
    for f in (v.file, v.image_file):
        if f is not None and f not in files:
            raise ManifestError(f"{where}: variant {v.name!r} file {f!r} has no checksum")
    name = f"{where}: variant {v.name!r}"
    if v.image_file is None and image is not None:
        raise ManifestError(f"{name} has no image_file; the bundle has 'image'")
    if v.image_file is not None and image is None:
        raise ManifestError(f"{name} has an image_file; the bundle has no 'image'")


def _parse_image(obj: Any, where: str) -> ImageInput | None:
    if obj is None:
        return None
    w = f"{where}: image"
    if not isinstance(obj, dict):
        raise ManifestError(f"{w} is not an object")
    try:
        pre = ImagePreprocess.from_dict(_need(obj, "preprocess", dict, w))
    except (TypeError, ValueError) as exc:
        raise ManifestError(f"{w}.preprocess: {exc}") from None
    inputs = tuple(_need(obj, "inputs", list, w))
    pixel = obj.get("pixel_input", "pixel_values")
    if not all(isinstance(i, str) for i in inputs) or pixel not in inputs:
        raise ManifestError(f"{w}: inputs {list(inputs)} must be names and include {pixel!r}")
    tokens = _need(obj, "image_tokens", int, w)
    if tokens <= 0:
        raise ManifestError(f"{w}: image_tokens must be positive")
    dims = _parse_input_dims(obj.get("input_dims") or {}, w)
    return ImageInput(pre, inputs, tokens, pixel, dims)


def _is_dim(d: Any) -> bool:
    """A dim is a name (dynamic) or a positive int (fixed)."""
    return isinstance(d, str) or (isinstance(d, int) and not isinstance(d, bool) and d > 0)


def _parse_input_dims(obj: Any, where: str) -> dict[str, tuple[str | int, ...]]:
    if not isinstance(obj, dict):
        raise ManifestError(f"{where}: field 'input_dims' is not an object")
    out: dict[str, tuple[str | int, ...]] = {}
    for name, dims in obj.items():
        if not (isinstance(dims, list) and dims and all(map(_is_dim, dims))):
            raise ManifestError(f"{where}: input_dims.{name} is not a list of names/positive ints")
        out[name] = tuple(dims)
    return out
