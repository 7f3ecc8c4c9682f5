"""TensorRT shape profiles from manifests, ORT profile strings, and engine-cache keys."""

from __future__ import annotations

import dataclasses

import pytest
from umr.runtime.trt_profile import (
    ShapeProfile,
    build_profile,
    cache_key,
    default_cache_root,
    profile_for,
)

from umr.bundle import BundleManifest, Variant

TEXT = ("input_ids", "attention_mask", "token_type_ids", "pool_mask")


def _manifest(**overrides: object) -> BundleManifest:
    base = BundleManifest(
        name="all-MiniLM-L6-v2",
        dim=384,
        pooling="mean",
        normalize=True,
        max_seq_length=256,
        inputs=TEXT,
        output="sentence_embedding",
        tokenizer="tokenizer.json",
        variants={"fp32": Variant("fp32", "model.onnx", "float32")},
        files={"model.onnx": "0" * 64},
    )
    return dataclasses.replace(base, **overrides)  # type: ignore[arg-type]


def test_text_profile_comes_from_the_manifest() -> None:
    profile = profile_for(_manifest())
    assert [name for name, *_ in profile.shapes] == list(TEXT)
    for _, smallest, typical, biggest in profile.shapes:
        assert (smallest, typical, biggest) == ((1, 1), (32, 128), (64, 256))
    assert profile.max_batch == 64


def test_short_models_cap_opt_at_their_max_seq_length() -> None:
    profile = profile_for(_manifest(max_seq_length=64, inputs=("input_ids",)))
    assert profile.shapes == (("input_ids", (1, 1), (32, 64), (64, 64)),)


def test_ort_strings_follow_input_order_and_format() -> None:
    opts = profile_for(_manifest(inputs=("input_ids", "attention_mask"))).ort_options()
    assert opts == {
        "trt_profile_min_shapes": "input_ids:1x1,attention_mask:1x1",
        "trt_profile_opt_shapes": "input_ids:32x128,attention_mask:32x128",
        "trt_profile_max_shapes": "input_ids:64x256,attention_mask:64x256",
    }


def test_recorded_dims_give_fixed_and_sequence_axes() -> None:
    """An image input (fixed CHW) next to text: nothing is keyed on input names."""
    dims = {"pixel_values": ("batch_size", 3, 224, 224), "input_ids": ("batch_size", "seq")}
    profile = build_profile(["pixel_values", "input_ids"], dims, 77, opt_batch=8, max_batch=16)
    assert profile.shapes[0] == (
        "pixel_values",
        (1, 3, 224, 224),
        (8, 3, 224, 224),
        (16, 3, 224, 224),
    )
    assert profile.shapes[1] == ("input_ids", (1, 1), (8, 77), (16, 77))
    assert profile.ort_options()["trt_profile_max_shapes"] == (
        "pixel_values:16x3x224x224,input_ids:16x77"
    )


def test_profile_json_round_trips() -> None:
    profile = profile_for(_manifest())
    assert ShapeProfile.from_json(profile.to_json()) == profile


@pytest.mark.parametrize(("opt", "mx"), [(0, 4), (8, 4)])
def test_bad_batch_ranges_are_refused(opt: int, mx: int) -> None:
    with pytest.raises(ValueError, match="opt_batch"):
        build_profile(["input_ids"], {}, 16, opt_batch=opt, max_batch=mx)


def test_cache_key_is_stable_and_changes_with_model_gpu_profile_versions() -> None:
    profile = profile_for(_manifest())
    base = dict(model_sha256="a" * 64, gpu_name="NVIDIA H100 80GB HBM3", profile=profile)
    key = cache_key(**base, versions={"tensorrt": "10.13.0"})
    assert key == cache_key(**base, versions={"tensorrt": "10.13.0"})
    changed = [
        cache_key(**{**base, "model_sha256": "b" * 64}, versions={"tensorrt": "10.13.0"}),
        cache_key(
            **{**base, "gpu_name": "NVIDIA A100-SXM4-80GB"}, versions={"tensorrt": "10.13.0"}
        ),
        cache_key(**{**base, "profile": profile_for(_manifest(max_seq_length=128))}),
        cache_key(**base, versions={"tensorrt": "10.14.1"}),
    ]
    assert len({key, *changed}) == 5


def test_cache_key_label_is_a_readable_safe_prefix() -> None:
    profile = profile_for(_manifest())
    key = cache_key("a" * 64, "gpu", profile, label="../my model/v2")
    assert key.startswith("my-model-v2-") and "/" not in key
    assert cache_key("a" * 64, "gpu", profile, label="a") != cache_key("a" * 64, "gpu", profile)


def test_cache_root_honours_umr_cache_dir(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("UMR_CACHE_DIR", str(tmp_path))
    assert default_cache_root() == tmp_path / "tensorrt"
    monkeypatch.delenv("UMR_CACHE_DIR")
    assert default_cache_root().parts[-3:] == (".cache", "umr", "tensorrt")
