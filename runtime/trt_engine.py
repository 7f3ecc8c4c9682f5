"""Serialized TensorRT engines in a bundle: their records, and running one without ORT.

``umr export --tensorrt`` builds an engine from the fp16 variant on the GPU that will
run it and lists it in that variant's ``details["tensorrt_engines"]`` (file, sha256,
GPU, compute capability, TensorRT version, shape profile). A multimodal bundle's fused
text+image graph gets its own engine, listed the same way under the details of that
graph (``details["fused_graph"]["tensorrt_engines"]``). An engine only loads into the
TensorRT version that built it and is tuned for one GPU model, so the runtime picks the
record matching both.

:class:`TrtEngineRunner` runs an engine with the ``tensorrt`` runtime and cuda-python
buffers. cuda-python rather than torch: the serving runtime never imports torch (a
2 GB dependency for a few ``cudaMalloc``/``cudaMemcpyAsync`` calls), and cuda-python
is what NVIDIA's own TensorRT samples use. Device buffers are allocated once, at the
profile's largest shapes; host staging buffers are pinned so copies are truly async.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from umr.runtime.gpu_env import GpuInfo, cuda_check, cudart

from umr.bundle import Variant
from umr.errors import BundleError, ProviderUnavailableError

log = logging.getLogger(__name__)
ENGINES_KEY = "tensorrt_engines"
#: A multimodal variant's details of its fused graph (own quantization, batching, engines).
FUSED_KEY = "fused_graph"


@dataclass(frozen=True)
class EngineRecord:
    """One engine listed in a variant's details."""

    file: str
    sha256: str
    gpu: str
    compute_capability: str
    tensorrt: str
    profile: Mapping[str, Any]

    @classmethod
    def from_json(cls, obj: Any, where: str) -> EngineRecord:
        """Parse one ``tensorrt_engines`` entry; ``BundleError`` names a bad field."""
        if not isinstance(obj, dict):
            raise BundleError(f"{where}: engine record is not an object")
        fields = ("file", "sha256", "gpu", "compute_capability", "tensorrt")
        values = {k: obj.get(k) for k in fields}
        bad = [k for k, v in values.items() if not isinstance(v, str) or not v]
        if bad or not isinstance(obj.get("profile"), dict):
            raise BundleError(f"{where}: engine record lacks {', '.join(bad) or 'profile'}")
        return cls(**values, profile=dict(obj["profile"]))  # type: ignore[arg-type]

    def to_json(self) -> dict[str, Any]:
        """The manifest form."""
        return {
            "file": self.file,
            "sha256": self.sha256,
            "gpu": self.gpu,
            "compute_capability": self.compute_capability,
            "tensorrt": self.tensorrt,
            "profile": dict(self.profile),
        }


def engine_records(variant: Variant) -> list[EngineRecord]:
    """The engines built from ``variant`` (none for most variants)."""
    raw = variant.details.get(ENGINES_KEY) or []
    if not isinstance(raw, list):
        raise BundleError(f"variant {variant.name!r}: details.{ENGINES_KEY} is not a list")
    return [EngineRecord.from_json(r, f"variant {variant.name!r}") for r in raw]


def match_engine(
    records: Sequence[EngineRecord], gpu: GpuInfo | None, trt_version: str | None
) -> EngineRecord | None:
    """The record built on this GPU model with this TensorRT version, if any."""
    if gpu is None or trt_version is None:
        return None
    return next((r for r in records if r.gpu == gpu.name and r.tensorrt == trt_version), None)


def describe_mismatch(
    variant: str, records: Sequence[EngineRecord], gpu: GpuInfo | None, trt_version: str | None
) -> str:
    """Why no engine of ``variant`` can run here, for error messages."""
    gpu_name = gpu.name if gpu else "none found"
    here = f"this machine: GPU {gpu_name}, TensorRT {trt_version or 'not installed'}"
    if not records:
        return (
            f"variant {variant!r} carries no TensorRT engine ({here}); build one on this GPU "
            "with `umr export --tensorrt` (engines are built from the fp16 variant)"
        )
    built = "; ".join(f"{r.file} for {r.gpu} with TensorRT {r.tensorrt}" for r in records)
    return (
        f"no engine of variant {variant!r} fits ({here}); the bundle has: {built}; "
        "rebuild on this GPU with `umr export --tensorrt`"
    )


def tensorrt_version() -> str | None:
    """The installed TensorRT's version (imports ``tensorrt``), None when it is missing."""
    try:
        import tensorrt as trt
    except ImportError:
        return None
    return str(trt.__version__)


class _Pinned:
    """One tensor's pinned host staging buffer and device buffer, sized for its max shape."""

    def __init__(self, nbytes: int, dtype: np.dtype) -> None:
        rt = cudart()
        self.nbytes, self.dtype = nbytes, dtype
        self.host_ptr = cuda_check(rt.cudaMallocHost(nbytes))
        self.device = cuda_check(rt.cudaMalloc(nbytes))
        raw = (ctypes.c_byte * nbytes).from_address(int(self.host_ptr))
        self.host = np.frombuffer(raw, dtype=np.uint8)

    def view(self, shape: tuple[int, ...]) -> np.ndarray:
        size = int(np.prod(shape)) * self.dtype.itemsize
        return self.host[:size].view(self.dtype).reshape(shape)

    def free(self) -> None:
        rt = cudart()
        rt.cudaFree(self.device)
        rt.cudaFreeHost(self.host_ptr)


class TrtEngineRunner:
    """Runs batches through a serialized engine; callable like the ORT runners.

    ``max_rows`` is the profile's largest batch. One execution context and stream,
    guarded by a lock: a context is not safe to use from two threads at once.
    """

    def __init__(self, engine_path: Path, inputs: Sequence[str], output: str, device_id: int = 0):
        import tensorrt as trt

        rt = cudart()
        self.device_id = device_id
        cuda_check(rt.cudaSetDevice(device_id))
        self._trt = trt
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(Path(engine_path).read_bytes())
        if self.engine is None:
            raise ProviderUnavailableError(
                f"TensorRT {trt.__version__} could not load {engine_path} (built for another "
                "GPU or TensorRT version?); rebuild it with `umr export --tensorrt`"
            )
        self._context = self.engine.create_execution_context()
        self.inputs, self.output = self._check_io(engine_path, inputs, output)
        self._buffers = self._allocate()
        for name, buf in self._buffers.items():
            self._context.set_tensor_address(name, int(buf.device))
        self._stream = cuda_check(rt.cudaStreamCreate())
        self._lock = threading.Lock()
        self.max_rows = int(self.engine.get_tensor_profile_shape(self.inputs[0], 0)[2][0])

    def _check_io(
        self, path: Path, inputs: Sequence[str], output: str
    ) -> tuple[tuple[str, ...], str]:
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        mode = self._trt.TensorIOMode.INPUT
        ins = tuple(n for n in names if self.engine.get_tensor_mode(n) == mode)
        if sorted(ins) != sorted(inputs) or output not in names:
            raise BundleError(
                f"{path}: engine tensors {names} do not match the manifest's inputs "
                f"{list(inputs)} and output {output!r}"
            )
        return ins, output

    def _allocate(self) -> dict[str, _Pinned]:
        """Buffers at the profile's max shapes (the output's max follows from the inputs')."""
        nptype = self._trt.nptype
        out: dict[str, _Pinned] = {}
        for name in self.inputs:
            biggest = tuple(self.engine.get_tensor_profile_shape(name, 0)[2])
            self._context.set_input_shape(name, biggest)
            dtype = np.dtype(nptype(self.engine.get_tensor_dtype(name)))
            out[name] = _Pinned(int(np.prod(biggest)) * dtype.itemsize, dtype)
        shape = tuple(self._context.get_tensor_shape(self.output))
        dtype = np.dtype(nptype(self.engine.get_tensor_dtype(self.output)))
        out[self.output] = _Pinned(int(np.prod(shape)) * dtype.itemsize, dtype)
        return out

    def __call__(self, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        rt = cudart()
        h2d = rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        d2h = rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        with self._lock:
            # The current device is per host thread; a server calls from many threads.
            cuda_check(rt.cudaSetDevice(self.device_id))
            for name in self.inputs:
                buf, arr = self._buffers[name], feeds[name]
                if arr.shape[0] > self.max_rows:
                    raise ValueError(f"{arr.shape[0]} rows > the engine's max {self.max_rows}")
                staged = buf.view(arr.shape)
                np.copyto(staged, arr, casting="same_kind")
                self._context.set_input_shape(name, arr.shape)
                cuda_check(
                    rt.cudaMemcpyAsync(
                        buf.device, staged.ctypes.data, staged.nbytes, h2d, self._stream
                    )
                )
            if not self._context.execute_async_v3(int(self._stream)):
                raise RuntimeError("TensorRT execute_async_v3 failed (see the TensorRT log)")
            out = self._buffers[self.output]
            result = out.view(tuple(self._context.get_tensor_shape(self.output)))
            cuda_check(
                rt.cudaMemcpyAsync(result.ctypes.data, out.device, result.nbytes, d2h, self._stream)
            )
            cuda_check(rt.cudaStreamSynchronize(self._stream))
            return result.astype(np.float32)  # a copy: the staging buffer is reused

    def close(self) -> None:
        """Free the buffers and the stream (also done when the runner is collected)."""
        bufs, self._buffers = getattr(self, "_buffers", {}), {}
        for buf in bufs.values():
            buf.free()
        stream = getattr(self, "_stream", None)
        if stream is not None:
            cudart().cudaStreamDestroy(stream)
            self._stream = None

    def __del__(self) -> None:
        # Best effort: at interpreter shutdown CUDA may already be torn down.
        with contextlib.suppress(Exception):
            self.close()
