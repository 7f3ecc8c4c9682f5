"""The embedding service: checked inputs in, one row per input out, through the batcher.

Each request is split by kind (text, image, text+image) into at most three jobs; jobs
of many requests with the same kind and instruction share one embedder call. With an
instruction, lone images go in as pairs with the empty text (the embedder's
``embed_image`` takes no instruction; the model reads ``[CLS] image [instr] [SEP]``).
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
from starlette.concurrency import run_in_threadpool

from umr.errors import ImageError, InputTypeError, InputValueError, ServerError

from .batching import DirectRunner, MicroBatcher, QueueFullError, make_executor
from .config import BatchConfig, Limits
from .errors import ApiError, from_umr_error
from .inputs import (
    FUSED,
    IMAGE,
    TEXT,
    Capabilities,
    Input,
    Plan,
    decode_images,
    pixels,
    plan_inputs,
)
from .limits import check_text
from .tokens import TokenCounter

#: Texts per ONNX call inside one batch (the Embedder's own default).
EMBED_BATCH_SIZE = 32
#: Above this many characters, counting tokens moves off the event loop.
_INLINE_CHARS = 16_384
#: How the embedder names an image of its call ("image 3: ..."), to rename it as a field.
_IMAGE_INDEX = re.compile(r"^image (\d+)\b(?: \([^)]*\))?")


class EmbeddingService:
    """Owns the embedder's executor (batching or not) and turns inputs into vectors."""

    def __init__(
        self,
        embedder: Any,
        counter: TokenCounter,
        limits: Limits,
        batching: BatchConfig,
        on_batch: Any = None,
    ) -> None:
        self.embedder = embedder
        self.counter = counter
        self.limits = limits
        self.caps = Capabilities.of(embedder)
        self.batching = batching.enabled
        self._batch_config = batching
        self._on_batch = on_batch
        self._executor: MicroBatcher | DirectRunner | None = None
        self._executor_lock = threading.Lock()

    @property
    def name(self) -> str:
        """The bundle's model name."""
        return str(self.embedder.manifest.name)

    @property
    def dim(self) -> int:
        """Vector dimension."""
        return int(self.embedder.dim)

    @property
    def modalities(self) -> list[str]:
        """What this server can embed."""
        kinds = ["text"] + (["image"] if self.caps.image else [])
        return kinds + (["text+image"] if self.caps.fused else [])

    @property
    def queued_items(self) -> int:
        """Inputs waiting for the embedder."""
        executor = self._executor
        return 0 if executor is None else executor.queued_items

    def close(self) -> None:
        """Stop the executor threads (finishing queued work); a later request restarts them."""
        with self._executor_lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.close()

    def _started(self) -> MicroBatcher | DirectRunner:
        # Started on first use and again after close: an app may be started and stopped
        # more than once (TestClient runs the lifespan per ``with`` block).
        with self._executor_lock:
            if self._executor is None:
                self._executor = make_executor(self._run, self._batch_config, self._on_batch)
            return self._executor

    async def embed(
        self, inputs: Sequence[Input], instruction: str | None
    ) -> tuple[np.ndarray, int]:
        """Unit vectors ``[len(inputs), dim]`` in input order, and the text tokens used."""
        if instruction is not None:
            check_text(instruction, self.limits.max_text_chars, "instruction")
        plan = plan_inputs(inputs, self.caps, self.limits)
        if plan.image_count:
            await run_in_threadpool(decode_images, plan, self.limits)
        if instruction is not None and plan.images and self.caps.fused:
            plan.images_as_pairs()
        text_tokens, fused_tokens = await self._count(plan)
        jobs: list[tuple[str, Any]] = []
        for kind, items, tokens, px in (
            (TEXT, plan.texts, text_tokens, 0),
            (IMAGE, plan.images, 0, pixels(plan.images)),
            (FUSED, plan.fused, fused_tokens, pixels([img for _, img in plan.fused])),
        ):
            if items:
                future = self._submit((kind, instruction), items, tokens, px)
                jobs.append((kind, asyncio.wrap_future(future)))
        results = await asyncio.gather(*(f for _, f in jobs), return_exceptions=True)
        out = np.empty((plan.count, self.dim), dtype=np.float32)
        for (kind, _), rows in zip(jobs, results, strict=True):
            if isinstance(rows, BaseException):
                fields = [inputs[i].image_field for i in plan.positions[kind]]
                raise _as_api_error(rows, fields) from rows
            out[plan.positions[kind]] = rows
        return out, text_tokens + fused_tokens

    def _submit(self, key: Hashable, items: list[Any], tokens: int, px: int) -> Any:
        try:
            return self._started().submit(key, items, tokens, px)
        except QueueFullError as exc:
            raise ApiError(503, "overloaded", str(exc), None, **{"Retry-After": "1"}) from None
        except ServerError as exc:
            raise ApiError(503, "shutting_down", str(exc)) from None

    async def _count(self, plan: Plan) -> tuple[int, int]:
        texts = plan.texts + [t for t, _ in plan.fused]
        if not texts:
            return 0, 0
        if sum(map(len, texts)) > _INLINE_CHARS:
            counts = await run_in_threadpool(self.counter.count, texts)
        else:
            counts = self.counter.count(texts)
        split = len(plan.texts)
        return sum(counts[:split]), sum(counts[split:])

    def _run(self, key: Hashable, items: list[Any]) -> np.ndarray:
        """The executor's call: one embedder call for jobs sharing ``key``."""
        return embed_batch(self.embedder, key, items)


def embed_batch(embedder: Any, key: Hashable, items: list[Any]) -> np.ndarray:
    """One embedder call for a batch of inputs sharing ``key`` = ``(kind, instruction)``:
    texts, images, or (text, image) pairs; rows in item order."""
    kind, instruction = key  # type: ignore[misc]
    if kind == TEXT:
        return embedder.embed_text(items, instruction=instruction, batch_size=EMBED_BATCH_SIZE)
    if kind == IMAGE:
        return embedder.embed_image(items, batch_size=EMBED_BATCH_SIZE)
    texts = [t for t, _ in items]
    images = [img for _, img in items]
    return embedder.embed_fused(texts, images, instruction=instruction, batch_size=EMBED_BATCH_SIZE)


def _as_api_error(exc: BaseException, image_fields: Sequence[str] = ()) -> BaseException:
    """Typed embedder errors become 4xx; anything else stays a bug (500).

    ``image_fields`` are the request fields of the failed call's images, in call order:
    the embedder names an image by its place in the call ("image 2"), which the
    client knows as e.g. ``input[5].image``.
    """
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, ImageError):
        return _image_error(exc, image_fields)
    if isinstance(exc, InputTypeError | InputValueError):
        # The embedder numbers texts within its batch, not the request: name only the
        # instruction, the one field it can be sure of.
        field = "instruction" if "instruction" in str(exc) else None
        return from_umr_error(exc, field)
    if isinstance(exc, ServerError):
        return ApiError(503, "shutting_down", str(exc))
    return exc


def _image_error(exc: ImageError, image_fields: Sequence[str]) -> ApiError:
    message = str(exc)
    found = _IMAGE_INDEX.match(message)
    if found is None or int(found.group(1)) >= len(image_fields):
        return from_umr_error(exc, None)
    field = image_fields[int(found.group(1))]
    return from_umr_error(ImageError(field + message[found.end() :]), field)
