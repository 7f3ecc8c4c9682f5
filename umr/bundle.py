"""The bundle format: a directory of ONNX files, tokenizer files and ``umr.json``.

``umr.json`` is described by the frozen dataclasses below. Export writes it, the
runtime reads it; nothing else crosses that boundary. Every file the bundle holds
is listed with its sha256 and is verified before it is trusted.
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
    """One ONNX graph of the bundle (``fp32``, ``int8``, ...)."""

    name: str
    file: str
    dtype: str
    parity: tuple[Parity, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)

    def parity_against(self, reference: str) -> Parity | None:
        """The parity record measured against ``reference``, if any."""
        return next((p for p in self.parity if p.reference == reference), None)


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
    for v in variants.values():
        if v.file not in files:
            raise ManifestError(f"{where}: variant {v.name!r} file {v.file!r} has no checksum")
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
    )


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
