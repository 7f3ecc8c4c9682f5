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


def text_match(
    queries: torch.Tensor, candidates: torch.Tensor, targets: torch.Tensor, cross: torch.Tensor
) -> torch.Tensor:
    """Mean ``1 - cos`` between each query and its positive, over the rows ``cross`` marks.

    A recipe's ``text_match`` weight adds it to InfoNCE. InfoNCE stops pulling a pair
    together once it outranks the other candidates; this term keeps pulling an image onto
    its name's text vector, a regression onto the text space like the issue's floor CNN.
    Measured on the ``vision`` stage it hurt every image task (EVAL.md, "Tried and not
    adopted"), so no built-in recipe uses it. ``cross`` marks the rows where one side is
    text only and the other image only; vectors are unit length, so the dot product is
    the cosine. Zero when no row is marked.
    """
    if not bool(cross.any()):
        return queries.new_zeros(())
    pos = candidates[targets[cross]]
    return (1.0 - (queries[cross] * pos).sum(-1)).mean()
