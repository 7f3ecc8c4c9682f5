"""Provider selection with substituted 'installed' lists, and silent-fallback detection."""

from __future__ import annotations

import logging

import pytest
from umr.runtime.providers import check_active, resolve_providers, short_name

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


def test_cuda_missing_says_what_is_installed_and_how_to_fix() -> None:
    with pytest.raises(ProviderUnavailableError) as err:
        resolve_providers("cuda", ["AzureExecutionProvider", CPU])
    msg = str(err.value)
    assert CUDA in msg and CPU in msg and "AzureExecutionProvider" in msg
    assert "umr[gpu]" in msg and "onnxruntime-gpu" in msg


def test_tensorrt_missing_is_refused_even_with_cuda() -> None:
    with pytest.raises(ProviderUnavailableError, match="TensorrtExecutionProvider"):
        resolve_providers("tensorrt", [CUDA, CPU])


def test_unknown_provider_name_lists_choices() -> None:
    with pytest.raises(ProviderUnavailableError, match="auto"):
        resolve_providers("rocm", [CPU])


def test_cuda_list_has_device_and_cpu_after_it() -> None:
    got = resolve_providers("cuda", [CUDA, CPU], device_id=1)
    assert got == [(CUDA, {"device_id": 1}), (CPU, {})]


def test_tensorrt_list_caches_engines_and_lists_cuda_then_cpu(tmp_path) -> None:
    got = resolve_providers("tensorrt", [TRT, CUDA, CPU], trt_cache_dir=tmp_path / "abc")
    assert names(got) == [TRT, CUDA, CPU]
    opts = got[0][1]
    assert opts["trt_engine_cache_enable"] is True
    assert opts["trt_timing_cache_enable"] is True
    assert opts["trt_engine_cache_path"] == str(tmp_path / "abc")
    assert opts["device_id"] == 0
    assert got[1] == (CUDA, {"device_id": 0})


@pytest.mark.parametrize(
    ("available", "expected"),
    [([CPU], "cpu"), ([CUDA, CPU], "cuda"), ([CPU, CUDA, TRT], "tensorrt")],
)
def test_auto_picks_best_and_logs_it(available, expected, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="umr.runtime.providers"):
        got = resolve_providers("auto", available)
    assert short_name(got[0][0]) == expected
    assert any(expected in r.getMessage() for r in caplog.records)


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
