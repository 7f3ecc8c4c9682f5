"""What this machine offers for GPU inference: packages installed, and which GPU.

Everything here is cheap and import-free where it can be (package metadata, not
imports), so error messages can say exactly what is installed and what is missing
without loading CUDA. The GPU is identified through cuda-python when installed,
else ``nvidia-smi``; TensorRT engines and their caches are keyed by it.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from dataclasses import dataclass
from importlib import metadata, util
from typing import Any

GPU_EXTRA = "pip install 'umr[gpu]'"
#: Distributions that matter for the GPU paths, in the order messages list them.
GPU_DISTRIBUTIONS = ("onnxruntime", "onnxruntime-gpu", "tensorrt", "cuda-python")


@dataclass(frozen=True)
class GpuInfo:
    """One CUDA device: its marketing name and compute capability (``"9.0"``)."""

    name: str
    compute_capability: str

    @property
    def slug(self) -> str:
        """A file-name-safe form of the name (``nvidia-h100-80gb-hbm3``)."""
        return re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-") or "gpu"


def installed_versions() -> dict[str, str | None]:
    """Version of each of :data:`GPU_DISTRIBUTIONS`, None where not installed."""
    out: dict[str, str | None] = {}
    for dist in GPU_DISTRIBUTIONS:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def importable(module: str) -> bool:
    """Whether ``module`` can be imported (found on the path; not imported)."""
    try:
        return util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def describe_installed(versions: dict[str, str | None] | None = None) -> str:
    """One line for error messages: ``onnxruntime 1.32.0, onnxruntime-gpu not installed, ...``.

    Both ``onnxruntime`` and ``onnxruntime-gpu`` installed is a known trap: they share
    the ``onnxruntime`` module and whichever was installed last wins, so say so.
    """
    versions = installed_versions() if versions is None else versions
    parts = [f"{d} {v}" if v else f"{d} not installed" for d, v in versions.items()]
    line = ", ".join(parts)
    if versions.get("onnxruntime") and versions.get("onnxruntime-gpu"):
        line += (
            " (onnxruntime and onnxruntime-gpu share one module: uninstall both, then "
            "install onnxruntime-gpu alone)"
        )
    return line


@functools.lru_cache(maxsize=8)
def gpu_info(device_id: int = 0) -> GpuInfo | None:
    """The CUDA device ``device_id``, or None when no GPU can be found."""
    return _from_cuda_python(device_id) or _from_nvidia_smi(device_id)


def cudart() -> Any:
    """cuda-python's runtime module (``cuda.bindings.runtime``; ``cuda.cudart`` before 12.8).

    Raises ``ImportError`` when cuda-python is not installed.
    """
    try:
        from cuda.bindings import runtime
    except ImportError:
        from cuda import cudart as runtime  # type: ignore[no-redef]
    return runtime


def cuda_check(result: Any) -> Any:
    """Unpack a cuda-python call's ``(err, *values)``; raise ``RuntimeError`` on an error."""
    rt = cudart()
    err, values = (result[0], result[1:]) if isinstance(result, tuple) else (result, ())
    if err != rt.cudaError_t.cudaSuccess:
        name = rt.cudaGetErrorName(err)[1]
        raise RuntimeError(f"CUDA error {name.decode() if isinstance(name, bytes) else name}")
    return values[0] if len(values) == 1 else values


def _from_cuda_python(device_id: int) -> GpuInfo | None:
    try:
        rt = cudart()
        prop = cuda_check(rt.cudaGetDeviceProperties(device_id))
    except (ImportError, RuntimeError, AttributeError):
        return None
    raw = prop.name
    name = raw.split(b"\0", 1)[0].decode() if isinstance(raw, bytes) else str(raw)
    return GpuInfo(name.strip(), f"{prop.major}.{prop.minor}")


def _from_nvidia_smi(device_id: int) -> GpuInfo | None:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    cmd = [exe, "--query-gpu=name,compute_cap", "--format=csv,noheader", "-i", str(device_id)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    line = proc.stdout.strip().splitlines()[0] if proc.returncode == 0 and proc.stdout else ""
    name, _, cc = line.rpartition(",")
    return GpuInfo(name.strip(), cc.strip()) if name.strip() else None
