"""The Triton pooling kernel against the NumPy reference.

Without a CUDA GPU the kernel runs in Triton's CPU interpreter (``TRITON_INTERPRET=1``, set
here for this module before the kernel module is first imported); with one it runs
compiled. Tests that only make sense on a real GPU skip with "needs a CUDA GPU".
"""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="torch is not installed: triton_pool takes torch tensors"
)
if importlib.util.find_spec("triton") is None:
    pytest.skip(
        "triton is not installed (pip install triton): the Triton kernel tests need it",
        allow_module_level=True,
    )

from umr.kernels.reference import pool  # noqa: E402
from umr.kernels.triton_pool import interpreting, triton_pool  # noqa: E402

CUDA = torch.cuda.is_available()
DEVICE = "cuda" if CUDA else "cpu"
needs_gpu = pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")


@pytest.fixture(autouse=True, scope="module")
def _interpret_without_gpu():
    """Interpret the kernel on the CPU when there is no GPU (read when triton jits it)."""
    with pytest.MonkeyPatch.context() as mp:
        if not CUDA:
            mp.setenv("TRITON_INTERPRET", "1")
        yield


def _case(seed: int, batch: int, seq: int, dim: int, dtype: torch.dtype):
    """Right-padded random-length rows, a 2-token instruction prefix out of the pool, row 0
    with an all-zero pool_mask, and (when batch > 2) a row with no attended token at all."""
    rng = np.random.default_rng(seed)
    hidden = torch.from_numpy(rng.standard_normal((batch, seq, dim)).astype(np.float32)).to(dtype)
    lengths = rng.integers(1, seq + 1, size=batch)
    attn = (np.arange(seq)[None, :] < lengths[:, None]).astype(np.int64)
    pm = attn.copy()
    pm[:, : min(2, seq - 1)] = 0
    pm[0] = 0
    if batch > 2:
        attn[-1] = 0
        pm[-1] = 0
    return hidden, attn, pm


def _check(hidden, attn, pm, mode, normalize, truncate_dim, **kw):
    got = triton_pool(
        hidden.to(DEVICE),
        torch.from_numpy(attn).to(DEVICE),
        torch.from_numpy(pm).to(DEVICE),
        mode,
        normalize,
        truncate_dim,
        **kw,
    )
    # The reference sees the same (rounded) half-precision values, in fp32: both sides then
    # accumulate in fp32, so the tolerance does not depend on the input dtype.
    want = pool(hidden.float().numpy(), attn, pm, mode, normalize, truncate_dim)
    assert got.dtype == torch.float32 and got.shape == want.shape
    got = got.cpu().numpy()
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6)
    return got


def test_kernel_really_runs_interpreted_without_a_gpu():
    if CUDA:
        pytest.skip("a CUDA GPU is present: the kernel runs compiled")
    from triton.runtime.interpreter import InterpretedFunction
    from umr.kernels import triton_pool_kernel

    hidden, attn, pm = _case(0, 2, 3, 4, torch.float32)
    _check(hidden, attn, pm, "mean", True, None)  # imports the kernel module if not yet
    assert interpreting()
    assert isinstance(triton_pool_kernel.pool_rows_kernel, InterpretedFunction)
    assert "umr.kernels.triton_pool_kernel" in sys.modules


# (batch, seq, dim): batch 1, seq 1, seq and dim not powers of two, dim wider than a tile row.
SHAPES = [(1, 1, 4), (1, 7, 5), (3, 5, 8), (4, 13, 17), (3, 33, 96), (2, 9, 600)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("mode", ["mean", "cls", "last"])
@pytest.mark.parametrize(("batch", "seq", "dim"), SHAPES)
def test_matches_reference(batch, seq, dim, mode, dtype):
    hidden, attn, pm = _case(batch * 1000 + seq * 10 + dim, batch, seq, dim, dtype)
    _check(hidden, attn, pm, mode, True, None)
    _check(hidden, attn, pm, mode, True, max(1, dim // 3))  # odd Matryoshka widths


@pytest.mark.parametrize("mode", ["mean", "cls", "last"])
def test_unnormalised_and_bf16(mode):
    hidden, attn, pm = _case(5, 3, 11, 24, torch.bfloat16)
    _check(hidden, attn, pm, mode, False, None)
    _check(hidden, attn, pm, mode, False, 7)


def test_empty_masks_give_zeros_not_nan():
    hidden = torch.ones((3, 4, 6))
    attn = np.array([[1, 1, 1, 0], [0, 0, 0, 0], [1, 1, 0, 0]], np.int64)
    pm = np.array([[0, 0, 0, 0], [0, 0, 0, 0], [1, 1, 0, 0]], np.int64)
    mean = _check(hidden, attn, pm, "mean", True, None)
    np.testing.assert_array_equal(mean[:2], 0.0)
    last = _check(hidden, attn, pm, "last", True, 3)
    np.testing.assert_array_equal(last[1], 0.0)
    np.testing.assert_allclose(np.linalg.norm(last[[0, 2]], axis=1), 1.0, rtol=1e-6)


def test_truncation_comes_before_the_l2():
    hidden, attn, pm = _case(7, 2, 6, 10, torch.float32)
    pm[:] = 1
    got = _check(hidden, attn, pm, "mean", True, 4)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, rtol=1e-6)


def test_last_token_with_left_padding_and_bool_int32_masks():
    hidden = torch.arange(12, dtype=torch.float32).reshape(2, 3, 2)
    attn = torch.tensor([[0, 1, 1], [1, 1, 0]], dtype=torch.bool)
    got = triton_pool(hidden.to(DEVICE), attn.to(DEVICE), None, "last", normalize=False)
    np.testing.assert_array_equal(got.cpu().numpy(), [[4.0, 5.0], [8.0, 9.0]])
    pm = attn.to(torch.int32)
    got = triton_pool(hidden.to(DEVICE), pm.to(DEVICE), pm.to(DEVICE), normalize=False)
    np.testing.assert_allclose(got.cpu().numpy(), [[3.0, 4.0], [7.0, 8.0]])


def test_strided_inputs_and_out_buffer():
    """Views (transposed hidden, sliced masks) and a caller-owned output buffer."""
    hidden, attn, pm = _case(11, 3, 8, 12, torch.float32)
    h_view = hidden.transpose(0, 1).contiguous().transpose(0, 1)  # batch stride != seq*dim
    wide = np.concatenate([pm, np.ones_like(pm)], axis=1)[:, :8]  # row stride 16, not 8
    assert not h_view.is_contiguous()
    out = torch.full((3, 5), float("nan"), device=DEVICE)
    attn_t, wide_t = torch.from_numpy(attn).to(DEVICE), torch.from_numpy(wide).to(DEVICE)
    got = triton_pool(h_view.to(DEVICE), attn_t, wide_t, truncate_dim=5, out=out)
    assert got is out
    want = pool(hidden.numpy(), attn, pm, "mean", True, 5)
    np.testing.assert_allclose(out.cpu().numpy(), want, rtol=2e-5, atol=2e-6)


def test_empty_batch_launches_nothing():
    mask = torch.zeros((0, 3), dtype=torch.int64, device=DEVICE)
    got = triton_pool(torch.zeros((0, 3, 4), device=DEVICE), mask, mask)
    assert got.shape == (0, 4)


@needs_gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_large_batch_on_gpu(dtype):
    hidden, attn, pm = _case(3, 64, 512, 1024, dtype)
    _check(hidden, attn, pm, "mean", True, None)
    _check(hidden, attn, pm, "last", True, 256)


@needs_gpu
def test_gpu_result_is_deterministic():
    hidden, attn, pm = _case(4, 16, 128, 384, torch.float16)
    args = (hidden.cuda(), torch.from_numpy(attn).cuda(), torch.from_numpy(pm).cuda())
    assert torch.equal(triton_pool(*args), triton_pool(*args))
