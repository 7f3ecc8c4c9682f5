"""One factory: a config (or its name) -> a ready :class:`UmrEncoder`, with LoRA if asked."""

from __future__ import annotations

import os

import torch

from umr.errors import ConfigError

from .config import ModelConfig
from .encoder import UmrEncoder, resolve_backbone
from .registry import get_config


def load_backbone(path: os.PathLike[str] | str) -> torch.nn.Module:
    """A Hugging Face encoder from a sentence-transformers or plain directory (safetensors only)."""
    from transformers import AutoModel

    try:
        model = AutoModel.from_pretrained(os.fspath(path), use_safetensors=True)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"backbone {path}: cannot load ({exc})") from None
    model.eval()  # dropout off: training is deterministic given the data order
    return model


def build_model(
    config: ModelConfig | str,
    *,
    backbone_dir: os.PathLike[str] | str | None = None,
    lora: bool = False,
    seed: int = 0,
) -> UmrEncoder:
    """Build the encoder: pretrained backbone + freshly initialized vision parts (seeded).

    With ``lora=True`` the backbone gets peft LoRA adapters (see :func:`add_lora`).
    """
    cfg = get_config(config) if isinstance(config, str) else config
    bdir = resolve_backbone(cfg, backbone_dir)
    backbone = load_backbone(bdir)
    torch.manual_seed(seed)
    model = UmrEncoder(cfg, backbone, bdir)
    if lora:
        add_lora(model)
    return model


def add_lora(model: UmrEncoder) -> None:
    """Inject LoRA adapters into the backbone in place (no-op if already there)."""
    from peft import LoraConfig, inject_adapter_in_model

    if has_lora(model):
        return
    c = model.cfg.lora
    peft_cfg = LoraConfig(
        r=c.rank, lora_alpha=c.alpha, lora_dropout=c.dropout, target_modules=list(c.targets)
    )
    model.backbone = inject_adapter_in_model(peft_cfg, model.backbone)


def has_lora(model: UmrEncoder) -> bool:
    return any("lora_" in n for n, _ in model.backbone.named_parameters())


def merge_lora(model: UmrEncoder) -> None:
    """Fold LoRA into the base weights (for export) and remove the adapters."""
    from peft.tuners.lora import LoraLayer

    for name, module in list(model.backbone.named_modules()):
        if isinstance(module, LoraLayer):
            module.merge()
            parent_name, _, child = name.rpartition(".")
            parent = model.backbone.get_submodule(parent_name) if parent_name else model.backbone
            setattr(parent, child, module.get_base_layer())
