"""Starting a recipe from another run's stage-end checkpoint (``umr train --start-from``).

Two recipes that share their first stages compute the same weights through those stages,
so the second run can start where the first one's shared stages ended instead of
recomputing them. The score-fusion baseline is the case this exists for: the default
recipe's ``vision`` stage trains through the score path (``"fusion": "score"``), where the
early-fusion model and the score-fusion model run the same computation; the early model
only adds its image skip gate, which that path never touches (no gradient, no random
numbers). So the baseline takes over the default run's ``stages/1-vision`` checkpoint,
gate dropped, and trains only its own later stages.

:func:`shared_stages` checks that claim for a given checkpoint and recipe, and says which
key breaks it when it does not hold.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

from umr.errors import ConfigError

from .checkpoint import read_json
from .recipe import Recipe, Stage

#: Recipe keys that do not change what the shared stages compute.
_RECIPE_FREE = frozenset({"name", "model", "stages", "log_every", "checkpoint_every"})
#: Model keys that only matter on the early-fusion path.
_FUSION_ONLY = frozenset({"name", "fusion", "image_residual"})


def shared_stages(ckpt: Path, recipe: Recipe, model_config: dict[str, Any]) -> int:
    """How many of ``recipe``'s stages ``ckpt`` has already finished, identically.

    ``ckpt`` must sit at a stage boundary (a run's ``stages/N-NAME`` directory, or a
    ``last/`` written at a stage's final step). Its run's recipe must equal ``recipe`` in
    every stage up to there and every key that shapes the computation (data, seed,
    augmentation, held-out styles, precision). Its model config must equal
    ``model_config``, except for the fusion keys when every shared stage ran on the
    score path. Raises :class:`ConfigError` naming the first difference otherwise.
    """
    state = read_json(ckpt, "state.json")
    src_recipe = read_json(ckpt, "recipe.json")
    src_model = read_json(ckpt, "config.json")
    if state is None or src_recipe is None or src_model is None:
        raise ConfigError(f"{ckpt}: needs state.json, recipe.json and config.json to start from")
    done = _finished_stages(ckpt, state, src_recipe)
    mine = _as_json(recipe.to_dict())  # as the checkpoint stored it: lists, not tuples
    if done >= len(mine["stages"]):
        raise ConfigError(
            f"{ckpt}: has finished {done} stages; recipe {recipe.name!r} has only "
            f"{len(mine['stages'])}, so nothing would be left to train"
        )
    for key in sorted((set(src_recipe) | set(mine)) - _RECIPE_FREE):
        if src_recipe.get(key) != mine.get(key):
            raise ConfigError(
                f"{ckpt}: its run's recipe has {key}={src_recipe.get(key)!r}, recipe "
                f"{recipe.name!r} has {mine.get(key)!r}; the shared stages would differ"
            )
    for i in range(done):
        if _stage_keys(src_recipe["stages"][i]) != mine["stages"][i]:
            raise ConfigError(
                f"{ckpt}: stage {i + 1} ({mine['stages'][i]['name']!r}) differs between "
                f"its run's recipe and recipe {recipe.name!r}"
            )
    _check_models(ckpt, src_model, _as_json(model_config), mine["stages"][:done])
    return done


def _as_json(obj: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(obj))


def _stage_keys(stage: dict[str, Any]) -> dict[str, Any]:
    """A stored stage with the defaults of keys added since it was written (a key whose
    default is off computes as the run did without it)."""
    defaults = {f.name: f.default for f in fields(Stage) if f.default is not MISSING}
    return _as_json({**defaults, **stage})


def _finished_stages(ckpt: Path, state: dict[str, Any], src_recipe: dict[str, Any]) -> int:
    stage, step = int(state.get("stage", 0)), int(state.get("step", 0))
    stages = src_recipe.get("stages") or []
    if step == 0:
        done = stage
    elif stage < len(stages) and step == stages[stage]["steps"]:
        done = stage + 1
    else:
        done = -1
    if done < 1:
        raise ConfigError(
            f"{ckpt}: stops at step {step} of stage {stage + 1}, not at the end of a stage; "
            "start from a run's stages/N-NAME checkpoint"
        )
    return done


def _check_models(
    ckpt: Path, src: dict[str, Any], mine: dict[str, Any], shared: list[dict[str, Any]]
) -> None:
    differ = sorted(k for k in set(src) | set(mine) if src.get(k) != mine.get(k))
    beyond = [k for k in differ if k not in _FUSION_ONLY]
    if beyond:
        raise ConfigError(
            f"{ckpt}: its model {src.get('name')!r} differs from {mine.get('name')!r} in "
            f"{beyond}; only the fusion keys {sorted(_FUSION_ONLY)} may differ"
        )
    early = [s["name"] for s in shared if s.get("fusion") != "score"]
    if differ and early:
        raise ConfigError(
            f"{ckpt}: stage(s) {early} ran the model's own fusion, so models "
            f"{src.get('name')!r} and {mine.get('name')!r} did not compute the same there; "
            "only stages with fusion 'score' are shared between fusion variants"
        )
