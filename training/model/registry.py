"""The registry of model architectures: JSON files in ``umr/training/configs``."""

from __future__ import annotations

from pathlib import Path

from umr.errors import ConfigError

from .config import ModelConfig, read_config

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


def list_models() -> list[str]:
    """Names of the built-in architectures."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.json"))


def get_config(name_or_path: str) -> ModelConfig:
    """A built-in architecture by name, or a config JSON file by path."""
    path = Path(name_or_path)
    if path.suffix == ".json" and path.is_file():
        return read_config(path)
    builtin = CONFIG_DIR / f"{name_or_path}.json"
    if not builtin.is_file():
        raise ConfigError(f"unknown model {name_or_path!r}; built-in models: {list_models()}")
    return read_config(builtin)
