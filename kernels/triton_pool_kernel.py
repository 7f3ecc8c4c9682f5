"""The Triton kernel behind :func:`umr.kernels.triton_pool.triton_pool` (imports triton).

Kept apart from the wrapper so that importing the wrapper (and validating inputs) never
needs triton, and so ``TRITON_INTERPRET`` is read when this module is first imported:
``triton.jit`` decides at decoration time whether the kernel is compiled or interpreted.

One program pools one batch row in a single pass over its token states:

- ``MODE_MEAN``: sum of the states weighted by ``pool_mask``, divided by the weight sum
  floored at ``pool_eps`` (an all-zero row gives zeros). Tokens whose weight is 0 are
  masked out of the load, so padding and instruction tokens are never read from memory.
- ``MODE_CLS``: the state at position 0.
- ``MODE_LAST``: the state at the last position where ``attention_mask`` is non-zero
  (zeros if none); the mask is scanned first, then only that one state is read.

Only the first ``dim`` components are read (``dim`` is the Matryoshka width when
truncating), then the row is L2-normalised with the norm floored at ``norm_eps``.
Everything is accumulated in fp32 whatever the input dtype; the output is fp32.
"""

from __future__ import annotations

import triton
import triton.language as tl

MODE_MEAN, MODE_CLS, MODE_LAST = 0, 1, 2
MODES = {"mean": MODE_MEAN, "cls": MODE_CLS, "last": MODE_LAST}

# Elements of one [BLOCK_S, BLOCK_D] tile: 8192 fp32 values is 64 registers per thread at
# 4 warps, the usual ceiling before spilling; wide rows get fewer tokens per step instead.
TILE_ELEMENTS = 8192


@triton.jit
def pool_rows_kernel(
    h_ptr,
    attn_ptr,
    pmask_ptr,
    out_ptr,
    seq_len,
    dim,
    stride_hb,
    stride_hs,
    stride_hd,
    stride_ab,
    stride_as,
    stride_pb,
    stride_ps,
    stride_ob,
    stride_od,
    pool_eps,
    norm_eps,
    MODE: tl.constexpr,
    NORMALIZE: tl.constexpr,
    BLOCK_S: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    # int64 row offsets: batch * seq * hidden passes 2**31 elements on big batches.
    row = tl.program_id(0).to(tl.int64)
    offs_d = tl.arange(0, BLOCK_D)
    dmask = offs_d < dim
    h_row = h_ptr + row * stride_hb
    if MODE == 0:
        acc = tl.zeros([BLOCK_D], dtype=tl.float32)
        weight = tl.zeros([BLOCK_S], dtype=tl.float32)
        for s0 in range(0, seq_len, BLOCK_S):
            offs_s = s0 + tl.arange(0, BLOCK_S)
            smask = offs_s < seq_len
            w = tl.load(pmask_ptr + row * stride_pb + offs_s * stride_ps, mask=smask, other=0)
            w = w.to(tl.float32)
            ptrs = h_row + offs_s[:, None] * stride_hs + offs_d[None, :] * stride_hd
            keep = (w[:, None] != 0) & dmask[None, :]
            tile = tl.load(ptrs, mask=keep, other=0.0).to(tl.float32)
            acc += tl.sum(tile * w[:, None], axis=0)
            weight += w
        out = acc / tl.maximum(tl.sum(weight, axis=0), pool_eps)
    else:
        pos = tl.zeros([], dtype=tl.int32)
        if MODE == 2:
            pos = pos - 1
            for s0 in range(0, seq_len, BLOCK_S):
                offs_s = s0 + tl.arange(0, BLOCK_S)
                m_ptrs = attn_ptr + row * stride_ab + offs_s * stride_as
                m = tl.load(m_ptrs, mask=offs_s < seq_len, other=0)
                hit = tl.where(m != 0, offs_s, -1)
                pos = tl.maximum(pos, tl.max(hit, axis=0))
        # No attended token (or an empty sequence): read nothing, pool to zeros. The scalar
        # condition goes into the bound, not into the mask, so the mask stays a plain vector.
        width = tl.where((pos >= 0) & (pos < seq_len), dim, 0)
        ptrs = h_row + tl.maximum(pos, 0).to(tl.int64) * stride_hs + offs_d * stride_hd
        out = tl.load(ptrs, mask=offs_d < width, other=0.0).to(tl.float32)
    if NORMALIZE:
        norm = tl.sqrt(tl.sum(out * out, axis=0))
        out = out / tl.maximum(norm, norm_eps)
    tl.store(out_ptr + row * stride_ob + offs_d * stride_od, out, mask=dmask)


def block_sizes(seq_len: int, dim: int) -> tuple[int, int, int]:
    """(BLOCK_S, BLOCK_D, num_warps): the whole kept row in one tile, as many tokens as fit."""
    block_d = triton.next_power_of_2(max(dim, 1))
    block_s = max(1, min(triton.next_power_of_2(max(seq_len, 1)), TILE_ELEMENTS // block_d))
    num_warps = 4 if block_d <= 1024 else 8
    return block_s, block_d, num_warps
