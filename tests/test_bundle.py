"""The bundle manifest: round trip, field validation, checksum verification."""

from __future__ import annotations

import dataclasses
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


# --- multimodal manifests ----------------------------------------------------------------


def _multimodal(files: dict[str, str]) -> BundleManifest:
    from umr.bundle import ImageInput
    from umr.images import ImagePreprocess

    fp32 = Variant("fp32", "model.onnx", "float32", image_file="multimodal.onnx")
    image = ImageInput(
        preprocess=ImagePreprocess(size=32),
        inputs=("input_ids", "attention_mask", "pool_mask", "pixel_values"),
        image_tokens=4,
        input_dims={"pixel_values": ("batch_size", 3, 32, 32)},
    )
    return dataclasses.replace(
        _manifest(files),
        variants={"fp32": fp32},
        modalities=("text", "image", "text+image"),
        image=image,
    )


@pytest.fixture
def mm_bundle(tmp_path):
    for name in ("model.onnx", "multimodal.onnx", "tokenizer.json"):
        (tmp_path / name).write_text(name)
    files = {
        n: sha256_file(tmp_path / n) for n in ("model.onnx", "multimodal.onnx", "tokenizer.json")
    }
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(_multimodal(files).to_json()))
    return tmp_path


def test_multimodal_round_trip(mm_bundle):
    m = read_manifest(mm_bundle)
    assert BundleManifest.from_json(json.loads(json.dumps(m.to_json()))) == m
    assert m.image is not None and m.image.preprocess.size == 32
    assert m.image.input_dims["pixel_values"] == ("batch_size", 3, 32, 32)
    assert m.variant("fp32").image_file == "multimodal.onnx"
    raw = json.loads((mm_bundle / MANIFEST_NAME).read_text())
    assert raw["image"]["preprocess"] == {
        "size": 32,
        "background": [255, 255, 255],
        "resample": "bicubic",
        "scale": "[-1, 1]",
    }
    verify_files(mm_bundle, m)


def test_text_bundles_without_the_new_fields_still_parse(bundle):
    obj = json.loads((bundle / MANIFEST_NAME).read_text())
    del obj["image"]
    for v in obj["variants"].values():
        del v["image_file"]
    (bundle / MANIFEST_NAME).write_text(json.dumps(obj))
    m = read_manifest(bundle)
    assert m.image is None and m.variant("fp32").image_file is None
    assert m.modalities == ("text",)


def _edit_mm(bundle, edit):
    obj = json.loads((bundle / MANIFEST_NAME).read_text())
    edit(obj)
    (bundle / MANIFEST_NAME).write_text(json.dumps(obj))


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda o: o.update(image=None), "has an image_file; the bundle has no 'image'"),
        (
            lambda o: o["variants"]["fp32"].update(image_file=None),
            "has no image_file; the bundle has 'image'",
        ),
        (lambda o: o["files"].pop("multimodal.onnx"), "'multimodal.onnx' has no checksum"),
        (
            lambda o: o["variants"]["fp32"].update(image_file="../x.onnx"),
            "points outside the bundle",
        ),
        (lambda o: o["image"]["preprocess"].update(size=3), r"image\.preprocess: .*unsupported"),
        (lambda o: o["image"]["preprocess"].update(mode="RGB"), "unknown keys"),
        (lambda o: o["image"].update(inputs=["input_ids"]), "must be names and include"),
        (lambda o: o["image"].update(image_tokens=0), "image_tokens must be positive"),
        (lambda o: o["image"].pop("image_tokens"), "missing field 'image_tokens'"),
        (lambda o: o.update(image=[]), "image is not an object"),
    ],
)
def test_bad_multimodal_fields_are_named(mm_bundle, edit, expected):
    _edit_mm(mm_bundle, edit)
    with pytest.raises(ManifestError, match=expected):
        read_manifest(mm_bundle)
