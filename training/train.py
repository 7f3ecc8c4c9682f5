"""``umr train``: progressive contrastive training from a recipe, resumable exactly.

Per step: sample a batch, embed queries and candidates (with gradient caching when
``micro_batch`` is set), InfoNCE, AdamW. The run directory holds ``last/`` (a
checkpoint for resuming), ``stages/N-NAME/`` (the model at the end of each stage but the
last, where another recipe may start: branch.py), ``final/`` (the finished model) and
``metrics.jsonl``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from umr.errors import ConfigError, DataError

from .batches import BatchSampler, TrainBatch, drop_styles
from .branch import shared_stages
from .checkpoint import (
    BANK,
    OPTIMIZER,
    load_trained,
    read_checkpoint_meta,
    read_json,
    save_checkpoint,
    trained_state,
)
from .data.records import Record, Side, read_records
from .distill import TEACHER, ScoreTeacher, distill_loss
from .encode import autocast, side_inputs
from .image_cache import ImageCache
from .loss import info_nce, text_match
from .mining import mine
from .model.build import add_lora, build_model, has_lora
from .model.encoder import UmrEncoder
from .model.text_batch import TextBatcher
from .optim import load_optimizer_state, make_optimizer, optimizer_state, set_lr
from .precision import emulation_warning, resolve_precision
from .recipe import Recipe, Stage
from .text_bank import TextBank, text_candidates, text_sides


class Trainer:
    """Holds everything a run needs; :meth:`run` trains every remaining stage."""

    def __init__(self, recipe: Recipe, out: Path, *, backbone_dir: Path | None = None) -> None:
        self.recipe, self.out = recipe, Path(out)
        self.backbone_dir = backbone_dir
        torch.manual_seed(recipe.seed)
        self.model = build_model(recipe.model, backbone_dir=backbone_dir, seed=recipe.seed)
        self.records = load_train_records(recipe)
        self.sampler = BatchSampler(self.records)
        self.cache = ImageCache(_image_paths(self.records), self.model.cfg.image)
        self.batcher = TextBatcher(
            self.model.backbone_dir / "tokenizer.json", self.model.cfg.max_text_tokens
        )
        self.rng = np.random.default_rng(recipe.seed)
        self.state: dict[str, Any] = {"stage": 0, "step": 0, "global_step": 0, "mined_stage": -1}
        # Resolved once and kept in the checkpoint, so a resumed run computes as it began.
        self.state["precision"] = resolve_precision(recipe.precision)
        self.opt_tensors: dict[str, torch.Tensor] | None = None
        self.bank = TextBank()
        self.saved_bank: dict[str, torch.Tensor] | None = None
        self.teacher: ScoreTeacher | None = None
        self.saved_teacher: dict[str, torch.Tensor] | None = None

    # -- resume ---------------------------------------------------------------------
    def resume(self, ckpt: Path) -> None:
        """Continue from ``ckpt`` exactly: weights, optimizer, sampler RNG, mined negatives."""
        from safetensors.torch import load_file

        self.state = self._take_over(ckpt, read_checkpoint_meta(ckpt), drop_extra=False)
        if (ckpt / OPTIMIZER).is_file():
            self.opt_tensors = load_file(ckpt / OPTIMIZER)
        if (ckpt / BANK).is_file():
            self.saved_bank = load_file(ckpt / BANK)
        if (ckpt / TEACHER).is_file():
            self.saved_teacher = load_file(ckpt / TEACHER)

    def start_from(self, ckpt: Path) -> None:
        """Begin after the stages this recipe shares with the run that wrote ``ckpt``, a
        stage-end checkpoint (see branch.py); the rest is trained as in a straight run."""
        meta = read_checkpoint_meta(ckpt)  # checksums before trusting its JSON
        done = shared_stages(ckpt, self.recipe, self.model.cfg.to_dict())
        self.state = {**self._take_over(ckpt, meta, drop_extra=True), "stage": done, "step": 0}

    def _take_over(self, ckpt: Path, meta: dict[str, Any], *, drop_extra: bool) -> dict[str, Any]:
        """Load ``ckpt``'s weights, sampler RNG and mined negatives (``meta``: its verified
        checkpoint.json); returns its run state.

        ``drop_extra`` leaves out tensors this model lacks (another fusion's skip gate)."""
        from safetensors.torch import load_file

        state = read_json(ckpt, "state.json")
        if state is None:
            raise ConfigError(f"{ckpt}: has no state.json; it cannot be resumed")
        if meta["lora"]:
            add_lora(self.model)
        tensors = load_file(ckpt / "trained.safetensors")
        if drop_extra:
            own = trained_state(self.model)
            tensors = {k: v for k, v in tensors.items() if k in own}
        load_trained(self.model, tensors, str(ckpt))
        self.rng.bit_generator.state = state.pop("rng")
        self.sampler.mined = _mined_from_json(state.pop("mined"), self.records)
        # Checkpoints from before "auto" existed ran the recipe's own precision.
        state.setdefault("precision", self.recipe.precision)
        return state

    # -- the run --------------------------------------------------------------------
    def run(self, *, progress: bool = True) -> Path:
        self.out.mkdir(parents=True, exist_ok=True)
        used = self.state["precision"]
        self._write_log({"event": "precision", "asked": self.recipe.precision, "used": used})
        if (why := emulation_warning(used)) is not None:
            warnings.warn(why, RuntimeWarning, stacklevel=2)
        for idx in range(self.state["stage"], len(self.recipe.stages)):
            self.state["stage"] = idx
            stage = self.recipe.stages[idx]
            self._run_stage(stage, progress)
            self.state["stage"], self.state["step"] = idx + 1, 0
            if idx + 1 < len(self.recipe.stages):  # where another recipe may branch off
                self._save(self.out / "stages" / f"{idx + 1}-{stage.name}", None)
        self.model.fusion_override = None
        self._save(self.out / "final", None)
        return self.out / "final"

    def _run_stage(self, stage: Stage, progress: bool) -> None:
        from tqdm import tqdm

        self._enter_stage(stage)
        if stage.mine_before and self.state["mined_stage"] != self.state["stage"]:
            self._mine(stage)
        if stage.text_bank:
            self._prepare_bank(stage)
        self.teacher = None
        # A score-fusion model's image vector *is* the score path: nothing to carry over.
        if stage.distill_score > 0 and self.model.cfg.fusion == "early":
            # Resuming mid-stage: the teacher the stage started with, not a new snapshot.
            self.teacher = ScoreTeacher(self.model, self.saved_teacher)
        self.saved_teacher = None
        opt = make_optimizer(self.model, stage)
        if self.opt_tensors is not None:
            load_optimizer_state(opt, self.model, self.opt_tensors)
            self.opt_tensors = None
        bar = tqdm(
            total=stage.steps,
            initial=self.state["step"],
            desc=f"stage {stage.name}",
            disable=not progress,
            dynamic_ncols=True,
        )
        while self.state["step"] < stage.steps:
            factor = _lr_factor(stage, self.state["step"])
            set_lr(opt, factor)
            lr = stage.lr * factor  # vision, projector and temperature
            t0 = time.perf_counter()
            loss = self._step(stage, opt)
            self.state["step"] += 1
            self.state["global_step"] += 1
            bar.update(1)
            bar.set_postfix(
                loss=f"{loss:.3f}", lr=f"{lr:.2e}", t=f"{self.model.temperature.item():.3f}"
            )
            self._log(stage, loss, factor, time.perf_counter() - t0)
            if (
                self.state["step"] % self.recipe.checkpoint_every == 0
                or self.state["step"] == stage.steps
            ):
                self._save(self.out / "last", opt)
        bar.close()

    def _enter_stage(self, stage: Stage) -> None:
        """The stage's fusion path, LoRA if it asks for it, and which weights train."""
        self.model.fusion_override = stage.fusion
        if stage.backbone == "lora":
            add_lora(self.model)
        _set_trainable(self.model, lora=stage.backbone == "lora")

    def _mine(self, stage: Stage) -> None:
        t0 = time.perf_counter()
        with self._autocast():
            self.sampler.mined = mine(
                self.model,
                self.sampler,
                stage.tasks,
                self.batcher,
                self.cache,
                self.rng,
                top=stage.mine_top,
                per_task=stage.mine_queries_per_task,
            )
        self.state["mined_stage"] = self.state["stage"]
        n = sum(len(v) for v in self.sampler.mined.values())
        self._write_log(
            {
                "event": "mined",
                "stage": stage.name,
                "queries": len(self.sampler.mined),
                "negatives": n,
                "seconds": round(time.perf_counter() - t0, 1),
            }
        )

    def _prepare_bank(self, stage: Stage) -> None:
        """Text lookup (frozen stages: exact) and the candidate bank for this stage."""
        t0 = time.perf_counter()
        # Text vectors depend on the backbone only. Without LoRA it is the pretrained one,
        # unchanged since any earlier frozen stage filled them, so those are reused. They
        # are computed without the stage's fusion override (the score path normalizes a
        # second time), so a reuse equals a refill bit for bit and resume stays exact.
        reuse = stage.backbone == "frozen" and not has_lora(self.model)
        with self._autocast(), _no_fusion_override(self.model):
            if stage.backbone != "frozen":
                self.bank.lookup = {}
            elif not (reuse and self.bank.lookup):
                self.bank.fill_lookup(
                    self.model, text_sides(self.records), self.batcher, self.cache
                )
            if self.saved_bank is not None:  # resuming: the bank this stage started with
                keys = [tuple(k) for k in json.loads(bytes(self.saved_bank["keys"].tolist()))]
                self.bank.set_bank(keys, self.saved_bank["vectors"])
                self.saved_bank = None
            elif not (reuse and self.bank.vectors is not None):
                cands = text_candidates(self.records)
                self.bank.fill_bank(self.model, cands, self.batcher, self.cache)
        self._write_log(
            {
                "event": "text_bank",
                "stage": stage.name,
                "bank": len(self.bank.keys),
                "lookup": len(self.bank.lookup),
                "seconds": round(time.perf_counter() - t0, 1),
            }
        )

    def _embed(
        self, sides: list[Side], keep_colour: list[bool], teacher: ScoreTeacher | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Vectors for ``sides`` (looked up where the bank knows them, else the model's) and,
        with a ``teacher``, the distillation term over the image-only ones."""
        lookup = self.bank.lookup
        known = [
            i for i, s in enumerate(sides) if s.image is None and (s.text, s.instruction) in lookup
        ]
        looked_up = set(known)
        rest = [i for i in range(len(sides)) if i not in looked_up]
        parts, term = [], None
        if known:
            keys = [(sides[i].text, sides[i].instruction) for i in known]
            parts.append(torch.stack([lookup[k] for k in keys]))
        if rest and self._score_from_lookup([sides[i] for i in rest]):
            parts.append(self._score_rows([sides[i] for i in rest], [keep_colour[i] for i in rest]))
        elif rest:
            feeds = side_inputs(
                [sides[i] for i in rest],
                self.batcher,
                self.cache,
                aug=self.recipe.augment,
                rng=self.rng,
                keep_colour=[keep_colour[i] for i in rest],
            )
            with self._autocast():
                parts.append(self.model(**feeds).float())
            if teacher is not None:
                term = distill_loss(parts[-1], feeds, teacher)
        order = torch.tensor(known + rest)
        return torch.cat(parts)[torch.argsort(order)], term

    def _score_from_lookup(self, sides: list[Side]) -> bool:
        """Score fusion with a frozen backbone: every side's text part is in the lookup,
        so the backbone need not run (in the vision stage it was most of the step)."""
        if (self.model.fusion_override or self.model.cfg.fusion) != "score":
            return False
        if not self.bank.lookup:  # filled in frozen stages only
            return False
        return all(
            s.image is not None and (s.text is None or (s.text, s.instruction) in self.bank.lookup)
            for s in sides
        )

    def _score_rows(self, sides: list[Side], keep_colour: list[bool]) -> torch.Tensor:
        """What the model's score-fusion forward gives for ``sides``, from looked-up text."""
        pixels, has_image = self.cache.pixels(
            [s.image for s in sides], aug=self.recipe.augment, rng=self.rng, keep_colour=keep_colour
        )
        zero = torch.zeros(self.model.dim)
        text = torch.stack(
            [zero if s.text is None else self.bank.lookup[(s.text, s.instruction)] for s in sides]
        )
        has_text = torch.tensor([s.text is not None for s in sides])
        with self._autocast():
            return self.model.score_combine(text, has_text, pixels, has_image).float()

    def _step(self, stage: Stage, opt: torch.optim.Optimizer) -> float:
        batch = self.sampler.sample(self.rng, stage.tasks, stage.batch_size, stage.hard_negatives)
        opt.zero_grad(set_to_none=True)
        self.model.train()
        self.model.backbone.eval()  # dropout stays off in the pretrained backbone
        if stage.micro_batch:
            aug = self.recipe.augment
            q = side_inputs(
                batch.queries,
                self.batcher,
                self.cache,
                aug=aug,
                rng=self.rng,
                keep_colour=batch.keep_colour_q,
            )
            c = side_inputs(
                batch.candidates,
                self.batcher,
                self.cache,
                aug=aug,
                rng=self.rng,
                keep_colour=batch.keep_colour_c,
            )
            loss = self._cached_step(batch, q, c, stage)
        else:
            qv, _ = self._embed(batch.queries, batch.keep_colour_q)
            cv, term = self._embed(batch.candidates, batch.keep_colour_c, self.teacher)
            fn = batch.false_negatives
            if stage.text_bank and self.bank.vectors is not None:
                cv = torch.cat([cv, self.bank.vectors])
                fn = torch.cat([fn, self.bank.mask(batch.rights, batch.text_answers)], dim=1)
            loss = info_nce(qv, cv, batch.targets, fn, self.model.temperature)
            loss = loss + self._match_term(stage, batch, qv, cv)
            if term is not None:
                loss = loss + stage.distill_score * term
            loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.requires_grad], 1.0)
        opt.step()
        return float(loss.detach())

    def _match_term(
        self, stage: Stage, batch: TrainBatch, qv: torch.Tensor, cv: torch.Tensor
    ) -> torch.Tensor | float:
        """The stage's ``text_match`` term (loss.py); 0 when the stage has none."""
        if stage.text_match <= 0:
            return 0.0
        return stage.text_match * text_match(qv, cv, batch.targets, batch.text_image_rows())

    def _cached_step(self, batch: TrainBatch, q: dict, c: dict, stage: Stage) -> torch.Tensor:
        """Gradient caching: embed all without graphs, take the loss's gradient with respect
        to the embeddings, then re-embed chunk by chunk and backpropagate that gradient.
        The effective batch is the whole batch; memory is one chunk's graph."""
        chunk = stage.micro_batch
        with torch.no_grad(), self._autocast():
            qv = _chunked(self.model, q, chunk)
            cv = _chunked(self.model, c, chunk)
        qv.requires_grad_(True)
        cv.requires_grad_(True)
        loss = info_nce(qv, cv, batch.targets, batch.false_negatives, self.model.temperature)
        loss = loss + self._match_term(stage, batch, qv, cv)
        loss.backward()
        for feeds, grad in ((q, qv.grad), (c, cv.grad)):
            for a in range(0, len(grad), chunk):
                with self._autocast():
                    emb = self.model(**_rows(feeds, a, a + chunk)).float()
                emb.backward(grad[a : a + chunk])
        return loss.detach()

    def _autocast(self) -> contextlib.AbstractContextManager:
        return autocast(self.state["precision"])

    # -- persistence ------------------------------------------------------------------
    def _save(self, where: Path, opt: torch.optim.Optimizer | None) -> None:
        state = dict(self.state)
        state["rng"] = self.rng.bit_generator.state
        state["mined"] = _mined_to_json(self.sampler.mined)
        extra = {}
        if self.bank.vectors is not None and opt is not None:
            keys = json.dumps(self.bank.keys).encode()
            extra[BANK] = {
                "vectors": self.bank.vectors.contiguous(),
                "keys": torch.tensor(list(keys), dtype=torch.uint8),
            }
        if self.teacher is not None and opt is not None:
            extra[TEACHER] = self.teacher.tensors()
        save_checkpoint(
            where,
            self.model,
            extra=extra,
            recipe=self.recipe.to_dict(),
            optimizer=None if opt is None else optimizer_state(opt, self.model),
            state=state,
            backbone_dir=self.backbone_dir,
        )

    def _log(self, stage: Stage, loss: float, factor: float, seconds: float) -> None:
        if self.state["step"] % self.recipe.log_every and self.state["step"] != stage.steps:
            return
        rates = {"lr": stage.lr * factor}
        if stage.backbone == "lora":
            rates["lora_lr"] = stage.lora_lr * factor
        self._write_log(
            {
                "stage": stage.name,
                "step": self.state["step"],
                "global_step": self.state["global_step"],
                "loss": round(loss, 5),
                **rates,
                "temperature": round(self.model.temperature.item(), 5),
                "step_seconds": round(seconds, 3),
                "time": time.time(),
            }
        )

    def _write_log(self, row: dict[str, Any]) -> None:
        with open(self.out / "metrics.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")


def load_train_records(recipe: Recipe) -> list[Record]:
    path = Path(recipe.data) / "train.jsonl"
    if not path.is_file():
        raise DataError(
            f"{path}: no training data; build it with `umr data emoji --out {recipe.data}`"
        )
    records = drop_styles(read_records(path), recipe.exclude_styles)
    if not records:
        raise DataError(f"{path}: no records left after excluding styles {recipe.exclude_styles}")
    return records


def _image_paths(records: list[Record]) -> list[Path]:
    out = []
    for r in records:
        for s in (r.query, r.positive, *r.negatives):
            if s.image is not None:
                out.append(s.image)
    return out


@contextlib.contextmanager
def _no_fusion_override(model: UmrEncoder) -> Iterator[None]:
    """The model's own fusion while inside (a stage may override it to the score path)."""
    kept, model.fusion_override = model.fusion_override, None
    try:
        yield
    finally:
        model.fusion_override = kept


def _set_trainable(model: UmrEncoder, *, lora: bool) -> None:
    for name, p in model.named_parameters():
        if name.startswith("backbone."):
            p.requires_grad_(lora and "lora_" in name)
        else:
            p.requires_grad_(True)


def _lr_factor(stage: Stage, step: int) -> float:
    """The multiplier on each part's base rate: linear warm-up, then cosine decay to 10%
    (per stage)."""
    if step < stage.warmup:
        return (step + 1) / stage.warmup
    frac = (step - stage.warmup) / max(1, stage.steps - stage.warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac))


def _rows(feeds: dict[str, torch.Tensor], a: int, b: int) -> dict[str, torch.Tensor]:
    return {k: v[a:b] for k, v in feeds.items()}


def _chunked(model: UmrEncoder, feeds: dict[str, torch.Tensor], chunk: int) -> torch.Tensor:
    n = len(feeds["input_ids"])
    return torch.cat([model(**_rows(feeds, a, a + chunk)).float() for a in range(0, n, chunk)])


def _side_json(s: Side) -> list[Any]:
    return [s.text, None if s.image is None else str(s.image)]


def _mined_to_json(mined: dict[int, list[Side]]) -> dict[str, list]:
    return {str(k): [_side_json(s) for s in v] for k, v in sorted(mined.items())}


def _mined_from_json(data: dict[str, list], records: list[Record]) -> dict[int, list[Side]]:
    out = {}
    for k, sides in data.items():
        if not 0 <= int(k) < len(records):
            raise ConfigError(
                f"mined negatives refer to record {k}; the data changed since the run"
            )
        out[int(k)] = [Side(text=t, image=None if i is None else Path(i)) for t, i in sides]
    return out


def train(
    recipe: Recipe,
    out: str | os.PathLike[str],
    *,
    resume: str | os.PathLike[str] | None = None,
    start_from: str | os.PathLike[str] | None = None,
    backbone_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> Path:
    """Train ``recipe`` into ``out``; returns ``out/final``.

    ``resume``: continue this recipe's own run from its checkpoint. ``start_from``: begin
    after the stages shared with another run, from its stage-end checkpoint (branch.py)."""
    if resume is not None and start_from is not None:
        raise ConfigError("give resume or start_from, not both")
    trainer = Trainer(
        recipe, Path(out), backbone_dir=None if backbone_dir is None else Path(backbone_dir)
    )
    if resume is not None:
        trainer.resume(Path(resume))
    if start_from is not None:
        trainer.start_from(Path(start_from))
    return trainer.run(progress=progress)
