"""Carrying the score path's image vectors over to early fusion (a training-stage option).

The ``vision`` stage trains the image tower through the score-fusion path, where an
image's vector is the normalised mean of its projected tokens: fast, and it learns
well. Early fusion sends the same tokens through the backbone, a different function,
and a short contrastive stage does not carry all of that over. A stage with
``distill_score > 0`` snapshots the image tower when it starts (the *teacher*) and adds,
for every image-only candidate, ``1 - cos(early-fusion vector, teacher's score-path
vector)`` to the loss, weighted by ``distill_score``. Score-fusion models skip it: their
image vector is the score path.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from .model.encoder import UmrEncoder

#: A distillation stage's teacher, saved beside its checkpoints so a resumed run is exact.
TEACHER = "teacher.safetensors"


class ScoreTeacher:
    """A frozen copy of the image tower (vision encoder + projector)."""

    def __init__(self, model: UmrEncoder, tensors: dict[str, torch.Tensor] | None = None) -> None:
        self.vision = copy.deepcopy(model.vision).eval().requires_grad_(False)
        self.projector = copy.deepcopy(model.projector).eval().requires_grad_(False)
        if tensors is not None:
            for prefix, part in (("vision.", self.vision), ("projector.", self.projector)):
                part.load_state_dict(
                    {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
                )

    def tensors(self) -> dict[str, torch.Tensor]:
        """Everything needed to rebuild this teacher (for checkpoints)."""
        out = {f"vision.{k}": v for k, v in self.vision.state_dict().items()}
        out.update({f"projector.{k}": v for k, v in self.projector.state_dict().items()})
        return {k: v.detach().contiguous() for k, v in out.items()}

    @torch.no_grad()
    def vectors(self, pixels: torch.Tensor) -> torch.Tensor:
        """Score-path unit vectors ``[B, dim]`` of ``pixels`` (as UmrEncoder's score fusion)."""
        return F.normalize(self.projector(self.vision(pixels)).float().mean(1), dim=-1)


def distill_loss(
    emb: torch.Tensor, feeds: dict[str, torch.Tensor], teacher: ScoreTeacher
) -> torch.Tensor:
    """Mean ``1 - cos`` between ``emb`` and the teacher over the image-only rows of ``feeds``
    (zero when there are none)."""
    has_image = feeds.get("has_image")
    if has_image is None:
        return emb.new_zeros(())
    rows = (has_image & ~feeds["has_text"]).nonzero().squeeze(1)
    if len(rows) == 0:
        return emb.new_zeros(())
    target = teacher.vectors(feeds["pixels"][rows])
    return (1.0 - (emb[rows] * target).sum(-1)).mean()
