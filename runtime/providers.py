"""Choosing ONNX Runtime execution providers, and refusing silent fallback.

Users name a provider by a short name (``"cpu"``, ``"cuda"``, ``"tensorrt"`` or
``"auto"``). :func:`resolve_providers` turns that into the list ORT wants, with the
options each provider needs. :func:`check_active` compares what a session actually
runs on with what was asked for: ORT quietly falls back to CPU when a GPU provider
fails to initialise, and a user who asked for a GPU must hear about it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from umr.errors import ProviderUnavailableError

log = logging.getLogger(__name__)

#: Short provider names and the ORT provider each one stands for.
ORT_NAMES: dict[str, str] = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}
#: Best first; ``"auto"`` takes the first one that is installed.
PREFERENCE: tuple[str, ...] = ("tensorrt", "cuda", "cpu")
REQUESTABLE: tuple[str, ...] = (*PREFERENCE, "auto")

_INSTALL_HINT = {
    "cuda": "install umr[gpu] (onnxruntime-gpu) and a CUDA driver",
    "tensorrt": "install umr[gpu] (onnxruntime-gpu and tensorrt) and a CUDA driver",
    "cpu": "reinstall onnxruntime",
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
    root = os.environ.get("UMR_CACHE_DIR") or Path.home() / ".cache" / "umr"
    return Path(root) / "tensorrt"


def _available() -> list[str]:
    import onnxruntime  # light; kept local so tests can inject lists without it

    return list(onnxruntime.get_available_providers())


def _pick(requested: str, available: Sequence[str]) -> str:
    """The short name to use, checking it is installed."""
    if requested not in REQUESTABLE:
        raise ProviderUnavailableError(
            f"provider {requested!r} is not known; choose one of {', '.join(REQUESTABLE)}"
        )
    if requested == "auto":
        chosen = next((p for p in PREFERENCE if ORT_NAMES[p] in available), None)
        if chosen is None:
            raise ProviderUnavailableError(
                f"no usable provider: ONNX Runtime offers only {', '.join(available) or 'none'}"
            )
        log.info("provider 'auto' chose %r (installed: %s)", chosen, ", ".join(available))
        return chosen
    if ORT_NAMES[requested] not in available:
        raise ProviderUnavailableError(
            f"provider {requested!r} needs {ORT_NAMES[requested]}, which is missing; "
            f"installed: {', '.join(available) or 'none'}; {_INSTALL_HINT[requested]}"
        )
    return requested


def resolve_providers(
    requested: str,
    available: Sequence[str] | None = None,
    *,
    device_id: int = 0,
    trt_cache_dir: str | os.PathLike[str] | None = None,
) -> ProviderList:
    """The ORT ``providers`` list (name, options) for ``requested``.

    ``requested`` is ``"cpu"``, ``"cuda"``, ``"tensorrt"`` or ``"auto"`` (the best
    installed, tensorrt > cuda > cpu). ``available`` defaults to
    ``onnxruntime.get_available_providers()``; tests pass their own. TensorRT engines
    are cached under ``trt_cache_dir`` (callers key it by model hash; TensorRT keys
    the engine files inside by GPU and shape profile itself). GPU providers are
    followed by the ones that can take the nodes they cannot run.

    Raises ``ProviderUnavailableError`` naming what is installed and what is missing.
    """
    have = list(_available() if available is None else available)
    chosen = _pick(requested, have)
    cuda = (ORT_NAMES["cuda"], {"device_id": device_id})
    cpu = (ORT_NAMES["cpu"], {})
    if chosen == "cpu":
        return [cpu]
    if chosen == "cuda":
        return [cuda, cpu]
    cache = Path(trt_cache_dir) if trt_cache_dir is not None else default_trt_cache_dir()
    trt = (
        ORT_NAMES["tensorrt"],
        {
            "device_id": device_id,
            "trt_engine_cache_enable": True,
            "trt_engine_cache_path": str(cache),
            "trt_timing_cache_enable": True,
            "trt_timing_cache_path": str(cache),
        },
    )
    tail = [cuda] if ORT_NAMES["cuda"] in have else []
    return [trt, *tail, cpu]


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
            f"libraries, or ask for provider='cpu'"
        )
    return short_name(wanted)
