"""Checkpoints: the trained parts as safetensors + JSON, verified by sha256 before use.

A checkpoint directory holds ``config.json`` (the model), ``recipe.json``,
``trained.safetensors`` (vision encoder, projector, LoRA, temperature; the backbone
comes from its package and is identified by the sha256 of its weights),
``optimizer.safetensors`` + ``state.json`` (to resume exactly) and ``checkpoint.json``
(file checksums). No pickle anywhere.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from umr.atomic import atomic_write_json
from umr.bundle import sha256_file
from umr.errors import CheckpointError

from .model.build import build_model, has_lora
from .model.config import config_from_dict
from .model.encoder import UmrEncoder, resolve_backbone

TRAINED = "trained.safetensors"
OPTIMIZER = "optimizer.safetensors"
BANK = "bank.safetensors"  # a stage's text bank, so a resumed run sees the same negatives
FORMAT = 1


def trained_state(model: UmrEncoder) -> dict[str, torch.Tensor]:
    """The parameters training changes: everything except the backbone's base weights."""
    out = {}
    for name, p in model.named_parameters():
        if not name.startswith("backbone.") or "lora_" in name:
            out[name] = p.detach().contiguous().clone()
    for name, b in model.named_buffers():  # BatchNorm running statistics
        if not name.startswith("backbone."):
            out[name] = b.detach().contiguous().clone()
    return out


def backbone_sha(model_dir: Path) -> str:
    return sha256_file(model_dir / "model.safetensors")


def save_checkpoint(
    out: Path,
    model: UmrEncoder,
    *,
    recipe: dict[str, Any] | None = None,
    optimizer: dict[str, torch.Tensor] | None = None,
    state: dict[str, Any] | None = None,
    backbone_dir: Path | None = None,
    extra: dict[str, dict[str, torch.Tensor]] | None = None,
) -> None:
    """Write a checkpoint directory atomically (staging dir, then rename).

    ``extra`` maps more safetensors file names to their tensors (resume state)."""
    out = Path(out)
    stage = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    save_file(trained_state(model), stage / TRAINED)
    files = [TRAINED]
    if optimizer is not None:
        save_file(optimizer, stage / OPTIMIZER)
        files.append(OPTIMIZER)
    for name, tensors in (extra or {}).items():
        save_file(tensors, stage / name)
        files.append(name)
    docs = {"config.json": model.cfg.to_dict(), "recipe.json": recipe, "state.json": state}
    for name, obj in docs.items():
        if obj is not None:
            atomic_write_json(stage / name, obj)
            files.append(name)
    bdir = model.backbone_dir if backbone_dir is None else Path(backbone_dir)
    atomic_write_json(
        stage / "checkpoint.json",
        {
            "format": FORMAT,
            "lora": has_lora(model),
            "backbone_sha256": backbone_sha(bdir),
            "files": {f: sha256_file(stage / f) for f in files},
        },
    )
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        out.rename(old)
        stage.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        stage.rename(out)


def read_checkpoint_meta(path: Path) -> dict[str, Any]:
    """``checkpoint.json`` after verifying every listed file's sha256."""
    path = Path(path)
    try:
        meta = json.loads((path / "checkpoint.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a checkpoint ({exc})") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: unsupported checkpoint format {meta.get('format')!r}")
    for name, digest in meta.get("files", {}).items():
        f = path / name
        if not f.is_file():
            raise CheckpointError(f"{path}: missing file {name}")
        if sha256_file(f) != digest:
            raise CheckpointError(f"{f}: sha256 mismatch; the checkpoint is corrupt or was edited")
    return meta


def read_json(path: Path, name: str) -> dict[str, Any] | None:
    f = Path(path) / name
    return json.loads(f.read_text(encoding="utf-8")) if f.is_file() else None


def load_checkpoint(
    path: str | os.PathLike[str], *, backbone_dir: str | os.PathLike[str] | None = None
) -> UmrEncoder:
    """Rebuild the model of a checkpoint (backbone from its package, trained parts from disk)."""
    path = resolve_checkpoint(path)
    meta = read_checkpoint_meta(path)
    cfg = config_from_dict(read_json(path, "config.json") or {}, str(path / "config.json"))
    bdir = resolve_backbone(cfg, backbone_dir)
    if backbone_sha(bdir) != meta["backbone_sha256"]:
        raise CheckpointError(
            f"{path}: trained on a backbone whose weights differ from {bdir} (sha256 mismatch)"
        )
    model = build_model(cfg, backbone_dir=bdir, lora=bool(meta["lora"]))
    load_trained(model, load_file(path / TRAINED), str(path))
    return model


def load_trained(model: UmrEncoder, tensors: dict[str, torch.Tensor], where: str) -> None:
    """Copy trained tensors in; a missing or extra name is a CheckpointError."""
    own = trained_state(model)
    missing, extra = sorted(set(own) - set(tensors)), sorted(set(tensors) - set(own))
    if missing or extra:
        raise CheckpointError(
            f"{where}: tensors do not match the config (missing {missing[:3]}, "
            f"unexpected {extra[:3]})"
        )
    params = dict(model.named_parameters()) | dict(model.named_buffers())
    with torch.no_grad():
        for name, t in tensors.items():
            if params[name].shape != t.shape:
                raise CheckpointError(
                    f"{where}: {name} has shape {tuple(t.shape)}, "
                    f"config expects {tuple(params[name].shape)}"
                )
            params[name].copy_(t)


def publish(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> Path:
    """Copy a checkpoint's model (trained tensors, config, recipe) without resume state:
    what ships in the repository as the default model."""
    src, dst = Path(src), Path(dst)
    meta = read_checkpoint_meta(src)
    stage = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    files = [f for f in (TRAINED, "config.json", "recipe.json") if (src / f).is_file()]
    for f in files:
        shutil.copyfile(src / f, stage / f)
    atomic_write_json(
        stage / "checkpoint.json",
        {
            "format": FORMAT,
            "lora": meta["lora"],
            "backbone_sha256": meta["backbone_sha256"],
            "files": {f: meta["files"][f] for f in files},
        },
    )
    keep = (
        [p for p in dst.iterdir() if p.name not in {*files, "checkpoint.json"}]
        if dst.exists()
        else []
    )
    for p in keep:  # eval reports and notes that live beside the weights
        shutil.copy2(p, stage / p.name)
    if dst.exists():
        shutil.rmtree(dst)
    stage.rename(dst)
    return dst


DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "default_model"
#: Checkpoints shipped in the package, by name (trained parts only; backbones from packages).
BUILTIN_CHECKPOINTS = {
    "default": DEFAULT_MODEL_DIR,
    "score-fusion": Path(__file__).resolve().parent / "baselines" / "score-fusion",
}


def resolve_checkpoint(name_or_path: str | os.PathLike[str]) -> Path:
    """A built-in checkpoint name (``"default"``, ``"score-fusion"``) or a path."""
    builtin = BUILTIN_CHECKPOINTS.get(str(name_or_path))
    if builtin is None:
        return Path(name_or_path)
    if not (builtin / "checkpoint.json").is_file():
        raise CheckpointError(f"the built-in checkpoint {name_or_path!r} is missing from {builtin}")
    return builtin
