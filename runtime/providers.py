"""Choosing ONNX Runtime execution providers, and refusing silent fallback.

Users name a provider by a short name (``"cpu"``, ``"cuda"``, ``"tensorrt"`` or
``"auto"``). :func:`resolve_providers` turns that into the list ORT wants, with the
options each provider needs. :func:`check_active` compares what a session actually
runs on with what was asked for: ORT quietly falls back to CPU when a GPU provider
fails to initialise, and a user who asked for a GPU must hear about it.

``"tensorrt-engine"`` (a serialized TensorRT engine run without ONNX Runtime) is
chosen in :mod:`umr.runtime.backend`; it is listed here so every message names it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from umr.runtime.gpu_env import GPU_EXTRA, describe_installed, importable
from umr.runtime.trt_profile import ShapeProfile, default_cache_root

from umr.errors import ProviderUnavailableError

log = logging.getLogger(__name__)

#: Short provider names and the ORT provider each one stands for.
ORT_NAMES: dict[str, str] = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}
ENGINE = "tensorrt-engine"
#: Best first; ``"auto"`` takes the first one that is installed.
PREFERENCE: tuple[str, ...] = ("tensorrt", "cuda", "cpu")
REQUESTABLE: tuple[str, ...] = (*PREFERENCE, ENGINE, "auto")

_MISSING = {
    "cuda": f"onnxruntime-gpu with the CUDA runtime it was built for (12 or 13) and cuDNN 9: "
    f"{GPU_EXTRA}",
    "tensorrt": f"onnxruntime-gpu and tensorrt (TensorRT 10 libraries) with a CUDA driver: "
    f"{GPU_EXTRA}",
    "cpu": "a working onnxruntime: pip install --force-reinstall onnxruntime",
}

ProviderList = list[tuple[str, dict[str, Any]]]


def short_name(ort_name: str) -> str:
    """The short name of an ORT provider (``"CUDAExecutionProvider"`` -> ``"cuda"``)."""
    for short, full in ORT_NAMES.items():
        if full == ort_name:
            return short
    return ort_name


def default_trt_cache_dir() -> Path:
    """Where TensorRT engines are cached: ``$UMR_CACHE_DIR/tensorrt``, else ``~/.cache/umr/...``."""
    return default_cache_root()


def available_providers() -> list[str]:
    """``onnxruntime.get_available_providers()``, less TensorRT where its libraries are absent.

    onnxruntime-gpu lists ``TensorrtExecutionProvider`` whether or not TensorRT is
    installed (the EP loads ``libnvinfer`` only when a session opens, then falls back).
    Most GPU users have CUDA without TensorRT, so ``"auto"`` must not pick it there.
    """
    import onnxruntime  # light; kept local so tests can inject lists without it

    names = list(onnxruntime.get_available_providers())
    if ORT_NAMES["tensorrt"] in names and not tensorrt_libraries_present():
        names.remove(ORT_NAMES["tensorrt"])
    return names


def tensorrt_libraries_present() -> bool:
    """Whether TensorRT's runtime library can be found: the ``tensorrt`` Python package
    (its wheels carry ``libnvinfer``) or ``libnvinfer`` on the system loader's path."""
    import ctypes.util

    return importable("tensorrt") or ctypes.util.find_library("nvinfer") is not None


def unavailable(requested: str, available: Sequence[str]) -> ProviderUnavailableError:
    """The error for a missing ORT provider: what is there, what is missing, the fix."""
    return ProviderUnavailableError(
        f"provider {requested!r} needs {ORT_NAMES[requested]}, which is missing; ONNX Runtime "
        f"offers {', '.join(available) or 'none'}; packages: {describe_installed()}; "
        f"tensorrt importable: {importable('tensorrt')}; to fix: install {_MISSING[requested]}"
    )


def check_known(requested: str) -> None:
    """Raise ``ProviderUnavailableError`` listing the choices if ``requested`` is not one."""
    if requested not in REQUESTABLE:
        raise ProviderUnavailableError(
            f"provider {requested!r} is not known; choose one of {', '.join(REQUESTABLE)}"
        )


def pick(requested: str, available: Sequence[str], skip: Collection[str] = ()) -> str:
    """The short ORT provider name to use for ``requested``, checking it is installed.

    ``skip`` names providers ``"auto"`` must pass over (e.g. ``"tensorrt"`` for a graph
    TensorRT cannot parse); an explicit request is never silently changed.
    """
    check_known(requested)
    if requested == ENGINE:
        raise ProviderUnavailableError(
            f"{ENGINE!r} runs a serialized engine without ONNX Runtime; it has no ORT "
            "provider list (open it with Embedder.load)"
        )
    if requested == "auto":
        chosen = next((p for p in PREFERENCE if p not in skip and ORT_NAMES[p] in available), None)
        if chosen is None:
            raise ProviderUnavailableError(
                f"no usable provider: ONNX Runtime offers only {', '.join(available) or 'none'}"
            )
        passed = [p for p in skip if ORT_NAMES.get(p) in available]
        log.info(
            "provider 'auto' chose %r (installed: %s%s)",
            chosen,
            ", ".join(available),
            f"; passed over {', '.join(passed)}" if passed else "",
        )
        return chosen
    if ORT_NAMES[requested] not in available:
        raise unavailable(requested, available)
    return requested


def tensorrt_options(
    device_id: int,
    cache_dir: str | os.PathLike[str],
    profile: ShapeProfile | None = None,
    *,
    fp16: bool = False,
) -> dict[str, Any]:
    """The ORT TensorRT EP options: engine + timing caches in ``cache_dir``, the profile.

    ``fp16`` lets TensorRT pick float16 kernels; set it for a float16 graph only (an
    fp32 variant asked for fp32 must not be lowered behind the user's back).
    """
    opts: dict[str, Any] = {
        "device_id": device_id,
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(cache_dir),
        "trt_timing_cache_enable": True,
        "trt_timing_cache_path": str(cache_dir),
        "trt_fp16_enable": fp16,
    }
    if profile is not None:
        opts.update(profile.ort_options())
    return opts


def resolve_providers(
    requested: str,
    available: Sequence[str] | None = None,
    *,
    device_id: int = 0,
    trt_cache_dir: str | os.PathLike[str] | None = None,
    trt_profile: ShapeProfile | None = None,
    trt_fp16: bool = False,
    skip: Collection[str] = (),
) -> ProviderList:
    """The ORT ``providers`` list (name, options) for ``requested``.

    ``requested`` is ``"cpu"``, ``"cuda"``, ``"tensorrt"`` or ``"auto"`` (the best
    installed, tensorrt > cuda > cpu, minus ``skip``). ``available`` defaults to
    ``onnxruntime.get_available_providers()``; tests pass their own. TensorRT engines
    and timing caches go to ``trt_cache_dir`` (callers key it by model hash, GPU and
    profile: :func:`umr.runtime.trt_profile.cache_key`); ``trt_profile`` gives the
    shape ranges. A GPU provider is followed by the ones that take the nodes it cannot
    run: TensorRT by CUDA (when installed), then CPU.

    Raises ``ProviderUnavailableError`` naming what is installed and what is missing.
    """
    have = list(available_providers() if available is None else available)
    chosen = pick(requested, have, skip)
    cuda = (ORT_NAMES["cuda"], cuda_options(device_id))
    cpu: tuple[str, dict[str, Any]] = (ORT_NAMES["cpu"], {})
    if chosen == "cpu":
        return [cpu]
    if chosen == "cuda":
        return [cuda, cpu]
    cache = Path(trt_cache_dir) if trt_cache_dir is not None else default_trt_cache_dir()
    trt = (ORT_NAMES["tensorrt"], tensorrt_options(device_id, cache, trt_profile, fp16=trt_fp16))
    tail = [cuda] if ORT_NAMES["cuda"] in have else []
    return [trt, *tail, cpu]


def cuda_options(device_id: int) -> dict[str, Any]:
    """The ORT CUDA EP options: the device, and no TF32.

    ORT's CUDA EP runs float32 MatMuls in TF32 by default on Ampere and newer GPUs (10-bit
    mantissa). A variant named fp32 must compute in fp32, as the parity figures in the
    manifest say it does; the fast reduced-precision path is the fp16 variant.
    """
    return {"device_id": device_id, "use_tf32": 0}


def check_active(session: Any, providers: ProviderList) -> str:
    """The short name of the provider ``session`` runs on; raise if it is not the one asked for.

    ``session`` is anything with ``get_providers()`` (an ``ort.InferenceSession``).
    """
    wanted = providers[0][0]
    active = list(session.get_providers())
    if not active or active[0] != wanted:
        raise ProviderUnavailableError(
            f"asked for {wanted} but ONNX Runtime is running on "
            f"{active[0] if active else 'nothing'} (it fell back silently; active: "
            f"{', '.join(active) or 'none'}); check the GPU driver, CUDA/cuDNN/TensorRT "
            f"libraries (packages: {describe_installed()}), or ask for provider='cpu'"
        )
    return short_name(wanted)
