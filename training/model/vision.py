"""The image encoder: a conv stem, a small transformer, and the projector into the backbone."""

from __future__ import annotations

import torch
from torch import nn

from .config import VisionConfig


class ConvStem(nn.Module):
    """Stride-2 conv stages: ``[B, 3, S, S] -> [B, C, S / 2^n, S / 2^n]``."""

    def __init__(self, channels: tuple[int, ...], width: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        prev = 3
        for ch in channels:
            layers += [nn.Conv2d(prev, ch, 3, stride=2, padding=1), nn.BatchNorm2d(ch), nn.GELU()]
            layers += [nn.Conv2d(ch, ch, 3, padding=1), nn.BatchNorm2d(ch), nn.GELU()]
            prev = ch
        layers.append(nn.Conv2d(prev, width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # oneDNN's CPU convolutions, backward most of all, run faster channels-last (the
        # vision tower's forward and backward on 512 images: 1.3x on an AVX2 EPYC). The
        # values are the same up to float rounding; an exported graph has no layouts.
        if x.device.type == "cpu" and not torch.jit.is_tracing():
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x)


class VisionEncoder(nn.Module):
    """Images -> ``image_tokens`` feature vectors of size ``width``.

    The patch grid is average-pooled to the configured token count *before* the
    transformer, so the token count bounds the cost of every later step too.
    """

    def __init__(self, cfg: VisionConfig, image_size: int) -> None:
        super().__init__()
        self.stem = ConvStem(cfg.stem_channels, cfg.width)
        side = round(cfg.image_tokens**0.5)
        self.pool = nn.AdaptiveAvgPool2d(side)
        self.pos = nn.Parameter(torch.zeros(1, cfg.image_tokens, cfg.width))
        nn.init.trunc_normal_(self.pos, std=0.02)
        layer = nn.TransformerEncoderLayer(
            cfg.width,
            cfg.heads,
            int(cfg.width * cfg.mlp_ratio),
            dropout=0.0,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.blocks = nn.TransformerEncoder(layer, cfg.depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.width)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        grid = self.pool(self.stem(pixels))  # [B, W, s, s]
        tokens = grid.flatten(2).transpose(1, 2) + self.pos
        return self.norm(self.blocks(tokens))


class Projector(nn.Module):
    """Vision features -> backbone hidden size, plus image positions and a LayerNorm (VISTA)."""

    def __init__(self, width: int, hidden: int, tokens: int) -> None:
        super().__init__()
        self.proj = nn.Linear(width, hidden)
        self.pos = nn.Parameter(torch.zeros(1, tokens, hidden))
        nn.init.trunc_normal_(self.pos, std=0.02)
        self.norm = nn.LayerNorm(hidden)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(feats) + self.pos)
