"""Running a padded batch through the backbone in length groups, without its padding.

A training batch mixes short rows (an image alone: ``[CLS]`` + 16 image tokens +
``[SEP]``) with long ones (an instruction, a name and an image), and a text-only row in
a batch with images carries 16 masked image slots. The backbone's cost is per position,
masked or not: on the default recipe's LoRA stage a batch is ~1.5x its real tokens.

Positions are already in the embeddings (BERT adds them before the first layer), and a
masked position neither attends nor is attended to, so dropping masked positions and
running rows in groups of similar length gives each row the same vector up to float
rounding. Rows are packed left (the kept positions in order), grouped by length, run,
pooled, and put back in input order; autograd flows through the gathers.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise

import torch

# A floor on rows per group, so each group stays one sizeable matrix product and a
# batch is cut into few calls. A guard, not a tuned value: on the default recipe 4
# groups (multitask step 4.4 -> 3.5 s) were measured, no other floor.
MIN_GROUP_ROWS = 16

Encode = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Pool = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def group_bounds(lengths: list[int], groups: int) -> list[tuple[int, int]]:
    """``[start, end)`` row ranges over ascending ``lengths``: at most ``groups`` ranges of
    at least :data:`MIN_GROUP_ROWS` rows each, cut where they save the most padding."""
    n = len(lengths)
    k = max(1, min(groups, n // MIN_GROUP_ROWS))
    cuts = [0, n]
    for _ in range(k - 1):
        best, at = 0, None
        for lo, hi in pairwise(cuts):
            for c in range(lo + MIN_GROUP_ROWS, hi - MIN_GROUP_ROWS + 1):
                # Rows [lo, c) stop padding to lengths[hi - 1] and pad to lengths[c - 1].
                saved = (c - lo) * (lengths[hi - 1] - lengths[c - 1])
                if saved > best:
                    best, at = saved, c
        if at is None:
            break
        cuts = sorted([*cuts, at])
    return list(pairwise(cuts))


def packed_encode_pool(
    encode: Encode,
    pool_fn: Pool,
    emb: torch.Tensor,
    mask: torch.Tensor,
    pool: torch.Tensor,
    groups: int,
) -> torch.Tensor:
    """``pool_fn(encode(emb, mask), pool)`` for every row, run in up to ``groups`` length
    groups with masked positions dropped. ``emb [B, L, H]``, ``mask``/``pool [B, L]``."""
    keep = mask.bool()
    lengths = keep.sum(1)
    order = torch.argsort(lengths, stable=True)
    sorted_lengths = lengths[order].tolist()
    # Stable sort of "masked?" puts each row's kept positions first, in their order.
    positions = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)
    outs = []
    for a, b in group_bounds(sorted_lengths, groups):
        rows = order[a:b]
        width = max(1, sorted_lengths[b - 1])
        pos = positions[rows, :width]
        e = torch.gather(emb[rows], 1, pos.unsqueeze(-1).expand(-1, -1, emb.shape[-1]))
        m = torch.gather(mask[rows], 1, pos)
        p = torch.gather(pool[rows], 1, pos)
        outs.append(pool_fn(encode(e, m), p))
    back = torch.empty_like(order)
    back[order] = torch.arange(len(order), device=order.device)
    return torch.cat(outs)[back]
