"""The bundle manifest: round trip, field validation, checksum verification."""

from __future__ import annotations

import json

import pytest

from umr.bundle import (
    MANIFEST_NAME,
    BundleManifest,
    Parity,
    Variant,
    read_manifest,
    sha256_file,
    verify_files,
)
from umr.errors import BundleError, ChecksumError, ManifestError, UnknownVariantError


def _manifest(files: dict[str, str]) -> BundleManifest:
    fp32 = Variant("fp32", "model.onnx", "float32", (Parity("ref", 3, 0.99999, 0.999995, 0.9999),))
    return BundleManifest(
        name="tiny",
        dim=4,
        pooling="mean",
        normalize=True,
        max_seq_length=16,
        inputs=("input_ids", "attention_mask"),
        output="sentence_embedding",
        tokenizer="tokenizer.json",
        variants={"fp32": fp32},
        files=files,
    )


@pytest.fixture
def bundle(tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"graph")
    (tmp_path / "tokenizer.json").write_text("{}")
    files = {n: sha256_file(tmp_path / n) for n in ("model.onnx", "tokenizer.json")}
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(_manifest(files).to_json()))
    return tmp_path


def test_round_trip_is_exact(bundle):
    m = read_manifest(bundle)
    assert BundleManifest.from_json(json.loads(json.dumps(m.to_json()))) == m
    assert m.variant("fp32").parity_against("ref").min_cosine == pytest.approx(0.99999)
    verify_files(bundle, m)


def test_unknown_variant_lists_what_exists(bundle):
    with pytest.raises(UnknownVariantError, match="'int4' is not in bundle 'tiny'; it has: fp32"):
        read_manifest(bundle).variant("int4")


def test_tampered_and_missing_files_are_named(bundle):
    m = read_manifest(bundle)
    (bundle / "model.onnx").write_bytes(b"grapH")
    with pytest.raises(ChecksumError, match=r"model\.onnx: sha256 .* does not match"):
        verify_files(bundle, m)
    (bundle / "model.onnx").unlink()
    with pytest.raises(ChecksumError, match=r"model\.onnx: listed in umr.json but missing"):
        verify_files(bundle, m)


def _edit(bundle, **changes):
    obj = json.loads((bundle / MANIFEST_NAME).read_text())
    obj.update(changes)
    (bundle / MANIFEST_NAME).write_text(json.dumps(obj))


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"format_version": 99}, "format_version 99 is not supported"),
        ({"pooling": "max"}, "pooling 'max' is not one of"),
        ({"dim": "384"}, "field 'dim' has type str"),
        ({"dim": True}, "field 'dim' has type bool"),
        ({"dim": 0}, "must be positive"),
        ({"tokenizer": "../../etc/passwd"}, "points outside the bundle"),
        ({"variants": {}}, "no variants"),
        ({"files": {"model.onnx": "abc"}}, "not a sha256 hex digest"),
        ({"files": {}}, "has no checksum"),
    ],
)
def test_bad_fields_are_named(bundle, changes, expected):
    _edit(bundle, **changes)
    with pytest.raises(ManifestError, match=expected):
        read_manifest(bundle)


def test_missing_field_and_bad_json(bundle):
    obj = json.loads((bundle / MANIFEST_NAME).read_text())
    del obj["max_seq_length"]
    (bundle / MANIFEST_NAME).write_text(json.dumps(obj))
    with pytest.raises(ManifestError, match="missing field 'max_seq_length'"):
        read_manifest(bundle)
    (bundle / MANIFEST_NAME).write_bytes(b"\xff{")
    with pytest.raises(ManifestError, match="not valid UTF-8 JSON"):
        read_manifest(bundle)


def test_not_a_bundle(tmp_path):
    with pytest.raises(BundleError, match="bundle directory not found"):
        read_manifest(tmp_path / "nope")
    with pytest.raises(BundleError, match=r"umr\.json is missing"):
        read_manifest(tmp_path)
