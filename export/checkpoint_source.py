"""A training checkpoint as export input: the LoRA-merged model, and its backbone written as
a sentence-transformers directory so the text graph goes through the text export unchanged.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from umr.export.tokenizer_files import TOKENIZER_FILE

_TOKENIZER_FILES = (
    TOKENIZER_FILE,
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
)


@dataclass(frozen=True)
class MergedCheckpoint:
    """A checkpoint's model with LoRA folded in (eval mode, fp32), and where it came from."""

    model: Any  # UmrEncoder
    path: Path
    name: str
    meta: dict[str, Any]

    @property
    def max_seq_length(self) -> int:
        """Tokens per text row, specials and instruction included: what training used."""
        return int(self.model.cfg.max_text_tokens)

    def source_info(self) -> dict[str, Any]:
        """What goes into the manifest's ``source``."""
        return {
            "checkpoint": self.name,
            "checkpoint_dir": str(self.path),
            "model_config": self.model.cfg.to_dict(),
            "lora_merged": bool(self.meta.get("lora")),
            "backbone_dir": str(self.model.backbone_dir),
            "backbone_sha256": self.meta.get("backbone_sha256"),
            "checkpoint_files": dict(self.meta.get("files", {})),
        }


def load_merged(
    checkpoint: str | os.PathLike[str], backbone_dir: str | os.PathLike[str] | None = None
) -> MergedCheckpoint:
    """Load ``checkpoint`` (a built-in name such as ``"default"``, or a directory), verify it,
    fold LoRA into the backbone and switch to eval mode (BatchNorm uses its running stats)."""
    from umr.training.checkpoint import (
        BUILTIN_CHECKPOINTS,
        load_checkpoint,
        read_checkpoint_meta,
        resolve_checkpoint,
    )
    from umr.training.model.build import has_lora, merge_lora

    path = resolve_checkpoint(checkpoint)
    meta = read_checkpoint_meta(path)
    model = load_checkpoint(path, backbone_dir=backbone_dir)
    if has_lora(model):
        merge_lora(model)
    model = model.float().eval()
    name = str(checkpoint) if str(checkpoint) in BUILTIN_CHECKPOINTS else path.name
    return MergedCheckpoint(model, path.resolve(), name, meta)


def write_text_source(ckpt: MergedCheckpoint, out: Path) -> Path:
    """The merged backbone as a sentence-transformers directory (mean pooling, the
    checkpoint's max length, the backbone's tokenizer files); ``out``."""
    model = ckpt.model
    out.mkdir(parents=True, exist_ok=True)
    model.backbone.save_pretrained(str(out), safe_serialization=True)
    for name in _TOKENIZER_FILES:
        if (model.backbone_dir / name).is_file():
            shutil.copyfile(model.backbone_dir / name, out / name)
    _write_json(out / "sentence_bert_config.json", {"max_seq_length": ckpt.max_seq_length})
    kinds = (("", "Transformer"), ("1_Pooling", "Pooling"), ("2_Normalize", "Normalize"))
    modules = [
        {"idx": i, "name": str(i), "path": p, "type": f"sentence_transformers.models.{t}"}
        for i, (p, t) in enumerate(kinds)
    ]
    _write_json(out / "modules.json", modules)
    pooling = {"word_embedding_dimension": model.dim, "pooling_mode_mean_tokens": True}
    (out / "1_Pooling").mkdir(exist_ok=True)
    _write_json(out / "1_Pooling" / "config.json", pooling)
    (out / "2_Normalize").mkdir(exist_ok=True)
    return out


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")
