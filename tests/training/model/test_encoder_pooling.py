"""The encoder's pooling: torch ops for training and the CPU, the Triton kernel on a GPU."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from umr.training.model import encoder
from umr.training.model.encoder import masked_mean_l2

CUDA = torch.cuda.is_available()
HAS_TRITON = importlib.util.find_spec("triton") is not None


def _reference(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.double().unsqueeze(-1)
    mean = (hidden.double() * m).sum(1) / m.sum(1).clamp_min(1e-9)
    return mean / mean.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def _inputs(device: str) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    hidden = torch.randn(5, 7, 16, generator=gen)
    mask = torch.tensor([[1] * 7, [1] * 3 + [0] * 4, [1] + [0] * 6, [0] * 7, [0, 1, 1, 0, 1, 0, 0]])
    return hidden.to(device), mask.to(device)


def test_cpu_takes_the_torch_ops_and_matches_the_reference(monkeypatch) -> None:
    def no_kernel(*_a, **_k):
        raise AssertionError("the Triton kernel must not run on CPU tensors")

    monkeypatch.setattr("umr.kernels.triton_pool.triton_pool", no_kernel)
    hidden, mask = _inputs("cpu")
    with torch.no_grad():
        got = masked_mean_l2(hidden, mask)
    want = _reference(hidden, mask).float()
    torch.testing.assert_close(got[:3], want[:3], atol=1e-6, rtol=0)
    assert torch.all(got[3] == 0)  # an empty mask pools to zeros, not NaN
    torch.testing.assert_close(got[4], want[4], atol=1e-6, rtol=0)


def test_the_kernel_is_chosen_only_without_gradients_on_cuda(monkeypatch) -> None:
    class FakeCuda:
        is_cuda = True
        requires_grad = False

    monkeypatch.setattr("umr.kernels.triton_pool.triton_available", lambda: True)
    assert encoder._triton_applies(FakeCuda())  # type: ignore[arg-type]
    grad = FakeCuda()
    grad.requires_grad = True
    assert not encoder._triton_applies(grad)  # type: ignore[arg-type]
    with torch.no_grad():
        assert encoder._triton_applies(grad)  # type: ignore[arg-type]
    monkeypatch.setenv("UMR_TRITON_POOL", "0")
    assert not encoder._triton_applies(FakeCuda())  # type: ignore[arg-type]
    monkeypatch.delenv("UMR_TRITON_POOL")
    monkeypatch.setattr("umr.kernels.triton_pool.triton_available", lambda: False)
    assert not encoder._triton_applies(FakeCuda())  # type: ignore[arg-type]
    assert not encoder._triton_applies(torch.zeros(2, 3, 4))


@pytest.mark.skipif(not (CUDA and HAS_TRITON), reason="needs a CUDA GPU and triton")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("float_mask", [False, True])
def test_on_cuda_the_kernel_matches_the_torch_ops(monkeypatch, dtype, float_mask) -> None:
    calls = []
    from umr.kernels import triton_pool as module

    real = module.triton_pool
    monkeypatch.setattr(module, "triton_pool", lambda *a, **k: calls.append(1) or real(*a, **k))
    hidden, mask = _inputs("cuda")
    hidden = hidden.to(dtype)
    mask = mask.float() if float_mask else mask
    with torch.inference_mode():
        got = masked_mean_l2(hidden, mask)
    assert calls and got.dtype == dtype
    monkeypatch.setenv("UMR_TRITON_POOL", "0")
    with torch.inference_mode():
        eager = masked_mean_l2(hidden, mask)
    tol = 1e-5 if dtype == torch.float32 else 2e-3
    torch.testing.assert_close(got.float(), eager.float(), atol=tol, rtol=0)
    assert torch.all(got[3] == 0)


def test_fp16_empty_rows_pool_to_zeros_not_nan() -> None:
    hidden, mask = _inputs("cpu")
    with torch.no_grad():
        got = masked_mean_l2(hidden.half(), mask)
    assert got.dtype == torch.float16 and not torch.isnan(got).any()
    assert torch.all(got[3] == 0)
    want = _reference(hidden.half().float(), mask).float()
    torch.testing.assert_close(got[:3].float(), want[:3], atol=2e-3, rtol=0)
