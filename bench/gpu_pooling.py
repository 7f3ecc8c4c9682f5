"""The Triton pooling kernel against eager PyTorch pooling, on a CUDA GPU.

Eager pooling is what a PyTorch model does without the kernel: mask multiply, sum,
divide, ``F.normalize`` (several kernels and a ``[batch, seq, dim]`` temporary). The
Triton kernel reads the states once and writes ``[batch, dim]``. Both are timed with CUDA
events after a warm-up; the report gives medians and the largest difference between them.
"""

from __future__ import annotations

import functools
from typing import Any

from umr.bench.stats import median

SHAPES = ((1, 16, 384), (64, 128, 384), (256, 128, 384), (64, 512, 768))
DTYPES = ("float32", "float16")


def eager_pool(hidden: Any, mask: Any) -> Any:
    """Masked mean then L2, in fp32, as plain torch ops."""
    import torch.nn.functional as F

    m = mask.to(hidden.dtype).unsqueeze(-1)
    mean = (hidden * m).sum(1).float() / m.sum(1).float().clamp_min(1e-9)
    return F.normalize(mean, dim=-1, eps=1e-12)


def _cuda_ms(torch: Any, fn: Any, reps: int) -> float:
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    samples = []
    for _ in range(reps):
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        samples.append(start.elapsed_time(end))
    return median(samples)


def run_pooling_on_gpu(reps: int = 200, seed: int = 0) -> dict[str, Any]:
    """Rows of shape, dtype, Triton ms, eager ms, speedup, max |difference|.

    Returns ``{"skipped": reason}`` where torch, triton or a CUDA GPU is missing.
    """
    try:
        import torch
        from umr.kernels.triton_pool import triton_available, triton_pool
    except ImportError as exc:
        return {"skipped": f"needs torch ({exc})"}
    if not torch.cuda.is_available():
        return {"skipped": "needs a CUDA GPU (torch.cuda.is_available() is False)"}
    if not triton_available():
        return {"skipped": "needs triton"}
    gen = torch.Generator(device="cuda").manual_seed(seed)
    rows = []
    for batch, seq, dim in SHAPES:
        for dtype_name in DTYPES:
            dtype = getattr(torch, dtype_name)
            hidden = torch.randn(batch, seq, dim, device="cuda", dtype=dtype, generator=gen)
            lengths = torch.randint(1, seq + 1, (batch,), device="cuda", generator=gen)
            mask = (torch.arange(seq, device="cuda")[None, :] < lengths[:, None]).long()
            for _ in range(10):
                triton_pool(hidden, mask, mask, "mean")
                eager_pool(hidden, mask)
            torch.cuda.synchronize()
            diff = (triton_pool(hidden, mask, mask, "mean") - eager_pool(hidden, mask)).abs()
            t_ms = _cuda_ms(torch, functools.partial(triton_pool, hidden, mask, mask), reps)
            e_ms = _cuda_ms(torch, functools.partial(eager_pool, hidden, mask), reps)
            rows.append(
                {
                    "shape": [batch, seq, dim],
                    "dtype": dtype_name,
                    "triton_ms": t_ms,
                    "eager_ms": e_ms,
                    "speedup": e_ms / t_ms,
                    "max_abs_diff": float(diff.max()),
                }
            )
    return {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "rows": rows}
