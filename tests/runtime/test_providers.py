"""Provider selection with substituted 'installed' lists, and silent-fallback detection."""

from __future__ import annotations

import logging

import pytest
from umr.runtime import gpu_env
from umr.runtime.providers import ENGINE, check_active, pick, resolve_providers, short_name
from umr.runtime.trt_profile import build_profile

from umr.errors import ProviderUnavailableError

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TRT = "TensorrtExecutionProvider"


class FakeSession:
    def __init__(self, providers: list[str]) -> None:
        self._providers = providers

    def get_providers(self) -> list[str]:
        return self._providers


def names(providers: list[tuple[str, dict]]) -> list[str]:
    return [n for n, _ in providers]


def test_cpu_on_cpu_only_install() -> None:
    assert resolve_providers("cpu", [CPU]) == [(CPU, {})]


def test_cuda_missing_says_what_is_installed_and_how_to_fix(monkeypatch) -> None:
    from umr.runtime import providers

    cpu_install = {"onnxruntime": "1.32.0", "onnxruntime-gpu": None, "tensorrt": None}
    monkeypatch.setattr(
        gpu_env, "installed_versions", lambda: dict(cpu_install, **{"cuda-python": None})
    )
    monkeypatch.setattr(providers, "importable", lambda name: False)
    with pytest.raises(ProviderUnavailableError) as err:
        resolve_providers("cuda", ["AzureExecutionProvider", CPU])
    msg = str(err.value)
    assert CUDA in msg and CPU in msg and "AzureExecutionProvider" in msg
    assert "pip install 'umr[gpu]'" in msg and "onnxruntime-gpu" in msg
    # ... and which packages are there (a CPU-only install)
    assert "onnxruntime-gpu not installed" in msg and "tensorrt importable: False" in msg


def test_missing_provider_message_names_installed_package_versions(monkeypatch) -> None:
    versions = {"onnxruntime": None, "onnxruntime-gpu": "1.23.0", "tensorrt": "10.13.0"}
    monkeypatch.setattr(
        gpu_env, "installed_versions", lambda: dict(versions, **{"cuda-python": None})
    )
    with pytest.raises(ProviderUnavailableError) as err:
        resolve_providers("tensorrt", [CUDA, CPU])
    msg = str(err.value)
    assert "onnxruntime-gpu 1.23.0" in msg and "tensorrt 10.13.0" in msg
    assert "cuda-python not installed" in msg and TRT in msg


def test_both_onnxruntime_builds_installed_is_called_out() -> None:
    line = gpu_env.describe_installed({"onnxruntime": "1.32.0", "onnxruntime-gpu": "1.32.0"})
    assert "share one module" in line and "install onnxruntime-gpu alone" in line


def test_tensorrt_missing_is_refused_even_with_cuda() -> None:
    with pytest.raises(ProviderUnavailableError, match="TensorrtExecutionProvider"):
        resolve_providers("tensorrt", [CUDA, CPU])


def test_unknown_provider_name_lists_choices() -> None:
    with pytest.raises(ProviderUnavailableError, match="auto"):
        resolve_providers("rocm", [CPU])


def test_cuda_list_has_device_and_cpu_after_it() -> None:
    got = resolve_providers("cuda", [CUDA, CPU], device_id=1)
    assert got == [(CUDA, {"device_id": 1, "use_tf32": 0}), (CPU, {})]


def test_tensorrt_list_caches_engines_and_lists_cuda_then_cpu(tmp_path) -> None:
    got = resolve_providers("tensorrt", [TRT, CUDA, CPU], trt_cache_dir=tmp_path / "abc")
    assert names(got) == [TRT, CUDA, CPU]
    opts = got[0][1]
    assert opts["trt_engine_cache_enable"] is True
    assert opts["trt_timing_cache_enable"] is True
    assert opts["trt_engine_cache_path"] == str(tmp_path / "abc")
    assert opts["trt_timing_cache_path"] == str(tmp_path / "abc")
    assert opts["device_id"] == 0
    assert opts["trt_fp16_enable"] is False  # an fp32 graph is not lowered behind the user's back
    assert got[1] == (CUDA, {"device_id": 0, "use_tf32": 0})


def test_tensorrt_without_cuda_ep_goes_straight_to_cpu() -> None:
    assert names(resolve_providers("tensorrt", [TRT, CPU])) == [TRT, CPU]


def test_tensorrt_options_carry_the_shape_profile_and_fp16() -> None:
    profile = build_profile(["input_ids", "attention_mask"], {}, 256)
    got = resolve_providers("tensorrt", [TRT, CUDA, CPU], trt_profile=profile, trt_fp16=True)
    opts = got[0][1]
    assert opts["trt_fp16_enable"] is True
    assert opts["trt_profile_min_shapes"] == "input_ids:1x1,attention_mask:1x1"
    assert opts["trt_profile_opt_shapes"] == "input_ids:32x128,attention_mask:32x128"
    assert opts["trt_profile_max_shapes"] == "input_ids:64x256,attention_mask:64x256"


@pytest.mark.parametrize(
    ("available", "expected"),
    [([CPU], "cpu"), ([CUDA, CPU], "cuda"), ([CPU, CUDA, TRT], "tensorrt")],
)
def test_auto_picks_best_and_logs_it(available, expected, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="umr.runtime.providers"):
        got = resolve_providers("auto", available)
    assert short_name(got[0][0]) == expected
    assert any(expected in r.getMessage() for r in caplog.records)


def test_auto_passes_over_skipped_providers_and_says_so(caplog) -> None:
    with caplog.at_level(logging.INFO, logger="umr.runtime.providers"):
        assert pick("auto", [TRT, CUDA, CPU], skip=("tensorrt",)) == "cuda"
    assert any("passed over tensorrt" in r.getMessage() for r in caplog.records)


def test_skip_never_changes_an_explicit_request() -> None:
    assert pick("tensorrt", [TRT, CUDA, CPU], skip=("tensorrt",)) == "tensorrt"


def test_engine_is_requestable_but_has_no_ort_list() -> None:
    with pytest.raises(ProviderUnavailableError, match="without ONNX Runtime"):
        resolve_providers(ENGINE, [TRT, CUDA, CPU])


def test_auto_with_nothing_usable_raises() -> None:
    with pytest.raises(ProviderUnavailableError, match="AzureExecutionProvider"):
        resolve_providers("auto", ["AzureExecutionProvider"])


def test_default_available_comes_from_onnxruntime() -> None:
    import onnxruntime as ort

    assert ort.get_available_providers()  # sanity: something is installed
    assert resolve_providers("cpu") == [(CPU, {})]


def test_check_active_accepts_requested_provider() -> None:
    assert check_active(FakeSession([CUDA, CPU]), [(CUDA, {}), (CPU, {})]) == "cuda"


def test_check_active_detects_silent_fallback_to_cpu() -> None:
    with pytest.raises(ProviderUnavailableError) as err:
        check_active(FakeSession([CPU]), [(CUDA, {"device_id": 0}), (CPU, {})])
    assert CUDA in str(err.value) and "fell back" in str(err.value)


def test_check_active_detects_trt_fallback_to_cuda() -> None:
    providers = resolve_providers("tensorrt", [TRT, CUDA, CPU])
    with pytest.raises(ProviderUnavailableError, match=TRT):
        check_active(FakeSession([CUDA, CPU]), providers)


@pytest.mark.parametrize("trt_libs", [True, False])
def test_tensorrt_is_offered_only_where_its_libraries_are(monkeypatch, trt_libs) -> None:
    import onnxruntime as ort
    from umr.runtime import providers

    monkeypatch.setattr(ort, "get_available_providers", lambda: [TRT, CUDA, CPU])
    monkeypatch.setattr(providers, "tensorrt_libraries_present", lambda: trt_libs)
    assert providers.available_providers() == ([TRT, CUDA, CPU] if trt_libs else [CUDA, CPU])
    assert pick("auto", providers.available_providers()) == ("tensorrt" if trt_libs else "cuda")
    if not trt_libs:  # asked for by name, it fails at once saying what is missing
        with pytest.raises(ProviderUnavailableError, match="TensorRT 10 libraries"):
            resolve_providers("tensorrt")


def test_tensorrt_libraries_are_looked_for_in_both_places(monkeypatch) -> None:
    import ctypes.util

    from umr.runtime import providers

    monkeypatch.setattr(providers, "importable", lambda name: False)
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    assert not providers.tensorrt_libraries_present()
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: f"lib{name}.so.10")
    assert providers.tensorrt_libraries_present()
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    monkeypatch.setattr(providers, "importable", lambda name: name == "tensorrt")
    assert providers.tensorrt_libraries_present()
