"""TrtEngineRunner's buffer plumbing, on the CPU: fake ``tensorrt`` and cuda-python modules.

"Device" memory is host memory here and the fake engine computes a known function from
the bytes it finds at the bound addresses, so the runner's sizes, dtypes, staging views,
copies and shape handling are checked for real. TensorRT and CUDA themselves are not:
that test is tests/runtime/test_gpu_engine.py, skipped without a GPU.
"""

from __future__ import annotations

import ctypes
import sys
import types

import numpy as np
import pytest
from umr.runtime import gpu_env, trt_engine

from umr.errors import BundleError

DIM = 3
INPUTS = ("input_ids", "attention_mask")


class FakeCudart:
    """cuda-python's runtime calls the runner makes, over host memory."""

    cudaError_t = types.SimpleNamespace(cudaSuccess=0)
    cudaMemcpyKind = types.SimpleNamespace(cudaMemcpyHostToDevice=1, cudaMemcpyDeviceToHost=2)

    def __init__(self) -> None:
        self.blocks: dict[int, ctypes.Array] = {}
        self.device_calls: list[int] = []

    def cudaMalloc(self, n: int) -> tuple[int, int]:
        buf = ctypes.create_string_buffer(n)
        self.blocks[ctypes.addressof(buf)] = buf
        return 0, ctypes.addressof(buf)

    cudaMallocHost = cudaMalloc

    def cudaFree(self, ptr: int) -> tuple[int]:
        del self.blocks[ptr]
        return (0,)

    cudaFreeHost = cudaFree

    def cudaMemcpyAsync(self, dst: int, src: int, n: int, kind: int, stream: int) -> tuple[int]:
        ctypes.memmove(dst, src, n)
        return (0,)

    def cudaSetDevice(self, device: int) -> tuple[int]:
        self.device_calls.append(device)
        return (0,)

    def cudaStreamCreate(self) -> tuple[int, int]:
        return 0, 7

    def cudaStreamSynchronize(self, stream: int) -> tuple[int]:
        return (0,)

    def cudaStreamDestroy(self, stream: int) -> tuple[int]:
        return (0,)


def _array(ptr: int, shape: tuple[int, ...], dtype: type) -> np.ndarray:
    n = int(np.prod(shape)) * np.dtype(dtype).itemsize
    return np.frombuffer((ctypes.c_byte * n).from_address(ptr), dtype=dtype).reshape(shape)


class FakeContext:
    """y[b] = sum_s(ids * mask) * [1, 2, 3]: reads and writes the bound addresses."""

    def __init__(self, engine: FakeEngine) -> None:
        self.engine, self.shapes, self.addr = engine, {}, {}

    def set_input_shape(self, name: str, shape: tuple) -> None:
        assert len(shape) == 2 and shape[0] <= 4 and shape[1] <= 16  # within the profile
        self.shapes[name] = tuple(shape)

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return (self.shapes["input_ids"][0], DIM)

    def set_tensor_address(self, name: str, ptr: int) -> None:
        self.addr[name] = ptr

    def execute_async_v3(self, stream: int) -> bool:
        shape = self.shapes["input_ids"]
        ids = _array(self.addr["input_ids"], shape, np.int32)
        mask = _array(self.addr["attention_mask"], shape, np.int32)
        out = _array(self.addr["y"], (shape[0], DIM), np.float32)
        out[:] = (ids * mask).sum(axis=1, keepdims=True) * np.arange(1, DIM + 1)
        return True


class FakeEngine:
    names = (*INPUTS, "y")

    def __init__(self, names: tuple[str, ...] | None = None) -> None:
        self.names = names or self.names
        self.num_io_tensors = len(self.names)

    def get_tensor_name(self, i: int) -> str:
        return self.names[i]

    def get_tensor_mode(self, name: str) -> str:
        return "out" if name == "y" else "in"

    def get_tensor_dtype(self, name: str) -> type:
        return np.float32 if name == "y" else np.int32  # an engine that narrowed int64 inputs

    def get_tensor_profile_shape(self, name: str, profile: int) -> list[tuple[int, int]]:
        return [(1, 1), (2, 8), (4, 16)]

    def create_execution_context(self) -> FakeContext:
        return FakeContext(self)


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> FakeCudart:
    rt = FakeCudart()
    monkeypatch.setattr(gpu_env, "cudart", lambda: rt)
    monkeypatch.setattr(trt_engine, "cudart", lambda: rt)
    fake_trt = types.ModuleType("tensorrt")
    fake_trt.__version__ = "10.13.0"  # type: ignore[attr-defined]
    fake_trt.Logger = type("Logger", (), {"WARNING": 2, "__init__": lambda s, level: None})  # type: ignore[attr-defined]
    fake_trt.TensorIOMode = types.SimpleNamespace(INPUT="in", OUTPUT="out")  # type: ignore[attr-defined]
    fake_trt.nptype = lambda dtype: dtype  # type: ignore[attr-defined]
    engine_names = {"names": None}

    class Runtime:
        def __init__(self, logger: object) -> None:
            pass

        def deserialize_cuda_engine(self, data: bytes) -> FakeEngine | None:
            return FakeEngine(engine_names["names"]) if data == b"ENGINE" else None

    fake_trt.Runtime = Runtime  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tensorrt", fake_trt)
    rt.engine_names = engine_names  # type: ignore[attr-defined]
    return rt


def _engine_file(tmp_path, data: bytes = b"ENGINE"):  # type: ignore[no-untyped-def]
    path = tmp_path / "m.engine"
    path.write_bytes(data)
    return path


def test_runner_copies_in_runs_and_copies_out(fakes, tmp_path) -> None:
    runner = trt_engine.TrtEngineRunner(_engine_file(tmp_path), INPUTS, "y", device_id=1)
    assert runner.max_rows == 4 and runner.inputs == INPUTS
    ids = np.array([[2, 5, 7, 0], [3, 1, 0, 0], [9, 0, 0, 0]], np.int64)
    mask = (ids > 0).astype(np.int64)
    got = runner({"input_ids": ids, "attention_mask": mask})
    want = (ids * mask).sum(axis=1, keepdims=True) * np.arange(1, DIM + 1)
    np.testing.assert_array_equal(got, want.astype(np.float32))
    assert got.dtype == np.float32 and got.flags.owndata  # not a view of the staging buffer
    again = runner({"input_ids": ids[:1, :2], "attention_mask": mask[:1, :2]})  # smaller shapes
    np.testing.assert_array_equal(again, [[7, 14, 21]])
    np.testing.assert_array_equal(got, want)  # the first result was not overwritten
    assert set(fakes.device_calls) == {1}  # every call selects the runner's device
    runner.close()
    assert fakes.blocks == {}  # device and pinned buffers freed


def test_runner_refuses_more_rows_than_the_profile(fakes, tmp_path) -> None:
    runner = trt_engine.TrtEngineRunner(_engine_file(tmp_path), INPUTS, "y")
    ids = np.ones((5, 3), np.int64)
    with pytest.raises(ValueError, match="max 4"):
        runner({"input_ids": ids, "attention_mask": ids})


def test_engine_whose_tensors_differ_from_the_manifest_is_refused(fakes, tmp_path) -> None:
    fakes.engine_names["names"] = ("input_ids", "y")  # type: ignore[attr-defined]
    with pytest.raises(BundleError, match="do not match"):
        trt_engine.TrtEngineRunner(_engine_file(tmp_path), INPUTS, "y")


def test_an_engine_tensorrt_cannot_load_says_to_rebuild(fakes, tmp_path) -> None:
    from umr.errors import ProviderUnavailableError

    with pytest.raises(ProviderUnavailableError, match="umr export --tensorrt"):
        trt_engine.TrtEngineRunner(_engine_file(tmp_path, b"stale"), INPUTS, "y")
