"""InfoNCE over in-batch candidates plus hard negatives, with a learnable temperature."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def info_nce(
    queries: torch.Tensor,
    candidates: torch.Tensor,
    targets: torch.Tensor,
    false_negatives: torch.Tensor,
    temperature: torch.Tensor,
) -> torch.Tensor:
    """Mean cross-entropy of each query against every candidate.

    ``candidates`` holds the batch's positives then its hard negatives; ``targets[i]``
    is query i's positive column; ``false_negatives[i, j]`` marks other columns that
    are also right for query i (the same emoji in the other style, a duplicate
    candidate), which are masked out instead of being pushed away.
    """
    logits = queries @ candidates.T / temperature
    logits = logits.masked_fill(false_negatives, float("-inf"))
    return F.cross_entropy(logits, targets)
