"""triton_pool's input validation and its error when triton is missing (no kernel launch)."""

from __future__ import annotations

import sys

import pytest

torch = pytest.importorskip(
    "torch", reason="torch is not installed: triton_pool takes torch tensors"
)

import umr.kernels  # noqa: E402
from umr.kernels.triton_pool import interpreting, triton_available, triton_pool  # noqa: E402

from umr.errors import InputTypeError, InputValueError, ProviderUnavailableError  # noqa: E402


@pytest.fixture(autouse=True)
def _interpret(monkeypatch):
    # CPU tensors pass the device check only when interpreting; these tests never launch.
    monkeypatch.setenv("TRITON_INTERPRET", "1")


def _ok(batch: int = 2, seq: int = 3, dim: int = 4):
    mask = torch.ones((batch, seq), dtype=torch.int64)
    return torch.zeros((batch, seq, dim)), mask, mask.clone()


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        (lambda h, a, p: ([[1.0]], a, p), InputTypeError, "hidden: expected a torch.Tensor"),
        (lambda h, a, p: (h.long(), a, p), InputTypeError, "hidden: dtype torch.int64"),
        (lambda h, a, p: (h[0], a, p), InputValueError, r"hidden: expected 3 dims"),
        (lambda h, a, p: (h, a.numpy(), p), InputTypeError, "attention_mask: expected a torch"),
        (lambda h, a, p: (h, a.float(), p), InputTypeError, "attention_mask: dtype torch.float32"),
        (lambda h, a, p: (h, a[:, :2], p), InputValueError, r"attention_mask: shape \(2, 2\)"),
        (lambda h, a, p: (h, a, p[:1]), InputValueError, r"pool_mask: shape \(1, 3\)"),
        (lambda h, a, p: (h, a, None), InputValueError, "pool_mask: required for mode 'mean'"),
    ],
)
def test_bad_tensors_are_named(change, error, match):
    with pytest.raises(error, match=match):
        triton_pool(*change(*_ok()))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"mode": "max"}, InputValueError, "mode: 'max'"),
        ({"normalize": 1}, InputTypeError, "normalize: expected a bool"),
        ({"truncate_dim": 0}, InputValueError, r"truncate_dim: 0 is not in \[1, 4\]"),
        ({"truncate_dim": 5}, InputValueError, r"truncate_dim: 5 is not in \[1, 4\]"),
        ({"truncate_dim": True}, InputTypeError, "truncate_dim: expected an int"),
        ({"out": torch.zeros((2, 4), dtype=torch.float16)}, InputTypeError, "out: dtype"),
        ({"out": torch.zeros((2, 3))}, InputValueError, r"out: \(2, 3\)"),
    ],
)
def test_bad_options_are_named(kwargs, error, match):
    with pytest.raises(error, match=match):
        triton_pool(*_ok(), **kwargs)


def test_errors_keep_builtin_bases():
    with pytest.raises(ValueError):
        triton_pool(*_ok(), mode="max")
    with pytest.raises(TypeError):
        triton_pool([[1.0]], *_ok()[1:])


def test_cpu_tensor_without_interpreter_is_refused(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET")
    assert not interpreting()
    with pytest.raises(InputValueError, match=r"needs a CUDA tensor .*TRITON_INTERPRET=1"):
        triton_pool(*_ok())


def test_missing_triton_is_a_provider_error(monkeypatch):
    # A None entry in sys.modules makes `import triton` raise ImportError; drop the kernel
    # module (and the package attribute `from umr.kernels import ...` would reuse) first.
    monkeypatch.setitem(sys.modules, "triton", None)
    monkeypatch.delitem(sys.modules, "umr.kernels.triton_pool_kernel", raising=False)
    monkeypatch.delattr(umr.kernels, "triton_pool_kernel", raising=False)
    assert not triton_available()
    with pytest.raises(ProviderUnavailableError, match="triton is not importable"):
        triton_pool(*_ok())
