"""AdamW with per-part learning rates, and its state as named tensors (safetensors, no pickle)."""

from __future__ import annotations

import torch

from umr.errors import CheckpointError

from .model.encoder import UmrEncoder
from .recipe import Stage


def make_optimizer(model: UmrEncoder, stage: Stage) -> torch.optim.AdamW:
    """Vision/projector/temperature at ``stage.lr``; LoRA at ``stage.lora_lr``."""
    lora, rest = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (lora if "lora_" in name else rest).append(p)
    groups = [{"params": rest, "base_lr": stage.lr}]
    if lora:
        groups.append({"params": lora, "base_lr": stage.lora_lr})
    return torch.optim.AdamW(groups, lr=stage.lr, weight_decay=0.01)


def set_lr(opt: torch.optim.Optimizer, factor: float) -> None:
    for g in opt.param_groups:
        g["lr"] = g["base_lr"] * factor


def optimizer_state(opt: torch.optim.Optimizer, model: UmrEncoder) -> dict[str, torch.Tensor]:
    """AdamW moments and step counts keyed by parameter name."""
    names = {id(p): n for n, p in model.named_parameters()}
    out = {}
    for group in opt.param_groups:
        for p in group["params"]:
            for key, value in opt.state.get(p, {}).items():
                t = value if torch.is_tensor(value) else torch.tensor(value)
                out[f"{names[id(p)]}::{key}"] = t.detach().contiguous().clone()
    return out


def load_optimizer_state(
    opt: torch.optim.Optimizer, model: UmrEncoder, tensors: dict[str, torch.Tensor]
) -> None:
    params = dict(model.named_parameters())
    for full, t in tensors.items():
        name, _, key = full.partition("::")
        if name not in params:
            raise CheckpointError(f"optimizer state names an unknown parameter {name}")
        opt.state[params[name]][key] = t.clone()
