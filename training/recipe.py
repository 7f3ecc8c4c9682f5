"""Training recipes: JSON files of progressive stages (U-MARVEL), validated into dataclasses."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from umr.errors import ConfigError

from .augment import AugmentConfig
from .data.records import TASKS
from .model.config import build_dataclass
from .precision import PRECISIONS

RECIPE_DIR = Path(__file__).resolve().parent / "recipes"
BACKBONE_MODES = ("frozen", "lora")


@dataclass(frozen=True)
class Stage:
    """One stage: which tasks (with sampling weights), for how long, what trains."""

    name: str
    steps: int
    tasks: dict[str, float]
    batch_size: int = 64
    micro_batch: int = 0  # >0: gradient caching in chunks of this many sequences
    lr: float = 1e-3
    lora_lr: float = 2e-4
    warmup: int = 20
    backbone: str = "frozen"
    hard_negatives: int = 0  # per query, from the record's negatives or mined ones
    mine_before: bool = False  # embed the pool with the current model and mine first
    mine_top: int = 8
    mine_queries_per_task: int = 3000
    fusion: str | None = None  # "score": train the image tower alone (no backbone pass)
    text_bank: bool = False  # all text candidates as extra negatives (see text_bank.py)
    distill_score: float = 0.0  # >0: pull early fusion toward the score path (distill.py)
    text_match: float = 0.0  # >0: also pull text/image positive pairs together (loss.py)


@dataclass(frozen=True)
class Recipe:
    """A whole training run."""

    name: str
    model: str
    data: str
    stages: tuple[Stage, ...]
    seed: int = 0
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    exclude_styles: tuple[str, ...] = ()
    precision: str = "auto"  # "bf16" autocasts matmuls; "auto": bf16 where native (precision.py)
    log_every: int = 10
    checkpoint_every: int = 100

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["stages"] = [asdict(s) for s in self.stages]
        return out


def _stage(data: Any, where: str) -> Stage:
    st = build_dataclass(Stage, data, where)
    unknown = sorted(set(st.tasks) - set(TASKS))
    if unknown or not st.tasks or any(w <= 0 for w in st.tasks.values()):
        raise ConfigError(
            f"{where}: tasks {unknown or st.tasks} invalid; known tasks: {list(TASKS)}"
        )
    if st.fusion not in (None, "score"):
        raise ConfigError(f"{where}: fusion must be null or 'score', got {st.fusion!r}")
    if st.backbone not in BACKBONE_MODES:
        raise ConfigError(f"{where}: backbone {st.backbone!r} not in {BACKBONE_MODES}")
    if st.steps < 1 or st.batch_size < 2 or st.micro_batch < 0 or st.hard_negatives < 0:
        raise ConfigError(f"{where}: steps >= 1, batch_size >= 2, micro_batch/hard_negatives >= 0")
    if st.distill_score < 0 or (st.distill_score > 0 and (st.fusion or st.micro_batch)):
        raise ConfigError(
            f"{where}: distill_score must be >= 0, and a distilling stage runs early fusion "
            "(fusion null) without micro_batch"
        )
    if st.text_match < 0:
        raise ConfigError(f"{where}: text_match must be >= 0, got {st.text_match}")
    return st


def recipe_from_dict(data: Any, where: str = "recipe") -> Recipe:
    """Validate a recipe; errors name the bad key or stage."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a JSON object")
    kw = dict(data)
    stages = kw.get("stages")
    if not isinstance(stages, list) or not stages:
        raise ConfigError(f"{where}: stages must be a non-empty list")
    kw["stages"] = tuple(_stage(s, f"{where}: stage {i}") for i, s in enumerate(stages))
    kw["augment"] = AugmentConfig.from_dict(kw.get("augment", {}))
    kw["exclude_styles"] = tuple(kw.get("exclude_styles", ()))
    if kw.get("precision", "auto") not in PRECISIONS:
        raise ConfigError(f"{where}: precision must be one of {list(PRECISIONS)}")
    return build_dataclass(Recipe, kw, where)


def list_recipes() -> list[str]:
    """Names of the built-in recipes."""
    return sorted(p.stem for p in RECIPE_DIR.glob("*.json"))


def load_recipe(name_or_path: str | os.PathLike[str]) -> Recipe:
    """A built-in recipe by name, or a recipe file by path."""
    path = Path(name_or_path)
    if not path.is_file():
        path = RECIPE_DIR / f"{name_or_path}.json"
        if not path.is_file():
            raise ConfigError(f"unknown recipe {name_or_path!r}; built-in: {list_recipes()}")
    return recipe_from_dict(_read_with_base(path, depth=0), str(path))


def _read_with_base(path: Path, depth: int) -> dict[str, Any]:
    """A recipe's JSON; ``"extends": NAME`` starts from that recipe and overrides keys."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read recipe ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    base = data.pop("extends", None)
    if base is None:
        return data
    if depth > 4:
        raise ConfigError(f"{path}: 'extends' chain is too deep (a cycle?)")
    base_path = RECIPE_DIR / f"{base}.json"
    if not base_path.is_file():
        raise ConfigError(f"{path}: extends unknown recipe {base!r}; built-in: {list_recipes()}")
    return {**_read_with_base(base_path, depth + 1), **data}
