"""Fused pooling + (Matryoshka truncation) + L2 for torch tensors, as one Triton kernel.

The same op as the ONNX pooling function (:mod:`umr.kernels.onnx_pooling`) and the NumPy
reference (:mod:`umr.kernels.reference`), for runtimes that hold the encoder's token states
on the GPU (a TensorRT engine through :mod:`umr.kernels.trt_plugin`, or plain torch): one
program per batch row reads only the tokens it pools and only the kept components, and
writes ``[batch, dim]`` fp32 rows.

Importing this module needs torch, never triton: the kernel module is imported on the first
call, so validation works (and fails with a typed error) where triton is missing. CPU
tensors run only under ``TRITON_INTERPRET=1`` (Triton's interpreter, used by the tests);
set it before triton is first imported.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from umr.kernels.reference import NORM_EPS, POOL_EPS, check_truncate_dim

from umr.errors import InputTypeError, InputValueError, ProviderUnavailableError

MODES = ("mean", "cls", "last")
HIDDEN_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def triton_available() -> bool:
    """Whether triton imports here (says nothing about a GPU: see :func:`interpreting`)."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def interpreting() -> bool:
    """Whether Triton runs kernels in its CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "").strip().lower() in ("1", "true", "yes", "on")


def triton_pool(
    hidden: torch.Tensor,
    attention_mask: torch.Tensor,
    pool_mask: torch.Tensor | None,
    mode: str = "mean",
    normalize: bool = True,
    truncate_dim: int | None = None,
    *,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Pool ``hidden`` [batch, seq, dim] (fp32/fp16/bf16) into fp32 [batch, kept dim].

    - ``mean``: mean over tokens weighted by ``pool_mask`` (an all-zero row gives zeros).
    - ``cls``: the state at position 0.
    - ``last``: the state at the last position where ``attention_mask`` is non-zero.

    Masks are integer or bool ``[batch, seq]`` tensors on ``hidden``'s device;
    ``pool_mask`` may be ``None`` except for ``mean``. ``truncate_dim`` keeps the first
    components before the L2 (Matryoshka). Accumulation is fp32 for every input dtype.
    ``out`` (fp32 ``[batch, kept dim]`` on the same device) receives the result in place,
    e.g. an output buffer owned by TensorRT; it is returned.

    Raises :class:`InputTypeError` / :class:`InputValueError` naming the bad argument, and
    :class:`ProviderUnavailableError` when triton is not installed.
    """
    _check_hidden(hidden)
    attn = _checked_mask("attention_mask", attention_mask, hidden)
    if mode not in MODES:
        raise InputValueError(f"mode: {mode!r} is not one of {MODES}")
    if pool_mask is None and mode == "mean":
        raise InputValueError("pool_mask: required for mode 'mean' (got None)")
    pmask = attn if pool_mask is None else _checked_mask("pool_mask", pool_mask, hidden)
    if not isinstance(normalize, bool):
        raise InputTypeError(f"normalize: expected a bool, got {type(normalize).__name__}")
    batch, seq, full = hidden.shape
    dim = check_truncate_dim(truncate_dim, full)
    if out is None:
        out = torch.empty((batch, dim), dtype=torch.float32, device=hidden.device)
    else:
        _check_out(out, (batch, dim), hidden.device)
    if batch == 0 or dim == 0:  # nothing to launch; an empty grid is an error on some drivers
        return out
    _launch(hidden, attn, pmask, out, mode, normalize, seq, dim)
    return out


def _check_hidden(hidden: Any) -> None:
    if not isinstance(hidden, torch.Tensor):
        raise InputTypeError(f"hidden: expected a torch.Tensor, got {type(hidden).__name__}")
    if hidden.dtype not in HIDDEN_DTYPES:
        raise InputTypeError(f"hidden: dtype {hidden.dtype} is not one of {HIDDEN_DTYPES}")
    if hidden.ndim != 3:
        raise InputValueError(
            f"hidden: expected 3 dims [batch, seq, dim], got {tuple(hidden.shape)}"
        )
    if not hidden.is_cuda and not interpreting():
        raise InputValueError(
            f"hidden: on {hidden.device}; the Triton kernel needs a CUDA tensor "
            "(or TRITON_INTERPRET=1 to interpret it on the CPU)"
        )


def _check_out(out: Any, shape: tuple[int, int], device: torch.device) -> None:
    if not isinstance(out, torch.Tensor):
        raise InputTypeError(f"out: expected a torch.Tensor, got {type(out).__name__}")
    if out.dtype != torch.float32:
        raise InputTypeError(f"out: dtype {out.dtype}; expected torch.float32")
    if tuple(out.shape) != shape or out.device != device:
        raise InputValueError(
            f"out: {tuple(out.shape)} on {out.device}; expected {shape} on {device}"
        )


def _checked_mask(name: str, mask: Any, hidden: torch.Tensor) -> torch.Tensor:
    """``mask`` checked against ``hidden``; bool masks viewed as uint8 (no copy)."""
    if not isinstance(mask, torch.Tensor):
        raise InputTypeError(f"{name}: expected a torch.Tensor, got {type(mask).__name__}")
    if mask.dtype.is_floating_point or mask.dtype.is_complex:
        raise InputTypeError(f"{name}: dtype {mask.dtype}; expected an integer or bool tensor")
    if tuple(mask.shape) != tuple(hidden.shape[:2]):
        raise InputValueError(
            f"{name}: shape {tuple(mask.shape)} != hidden's [batch, seq] {tuple(hidden.shape[:2])}"
        )
    if mask.device != hidden.device:
        raise InputValueError(f"{name}: on {mask.device}, hidden on {hidden.device}")
    # Triton loads torch.bool as int1 pointers, which some backends reject; uint8 is safe.
    return mask.view(torch.uint8) if mask.dtype == torch.bool else mask


def _launch(
    hidden: torch.Tensor,
    attn: torch.Tensor,
    pmask: torch.Tensor,
    out: torch.Tensor,
    mode: str,
    normalize: bool,
    seq: int,
    dim: int,
) -> None:
    try:
        from umr.kernels import triton_pool_kernel as k
    except ImportError as exc:
        raise ProviderUnavailableError(
            f"triton is not importable ({exc}); install it (pip install triton) to pool on the GPU"
        ) from exc
    block_s, block_d, num_warps = k.block_sizes(seq, dim)
    k.pool_rows_kernel[(hidden.shape[0],)](
        hidden,
        attn,
        pmask,
        out,
        seq,
        dim,
        *hidden.stride(),
        *attn.stride(),
        *pmask.stride(),
        *out.stride(),
        POOL_EPS,
        NORM_EPS,
        MODE=k.MODES[mode],
        NORMALIZE=normalize,
        BLOCK_S=block_s,
        BLOCK_D=block_d,
        num_warps=num_warps,
    )
