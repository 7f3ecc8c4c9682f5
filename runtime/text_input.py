"""Text input: validation, tokenization, and length-sorted padded batches.

Texts are tokenized once with the bundle's ``tokenizer.json`` (truncated to the
model's ``max_seq_length``, unpadded; ``encode_batch`` runs in parallel in Rust),
sorted by token count so each batch pads only to its own longest text, and turned
into int64 arrays named as the graph's inputs. Each batch carries the input
positions of its rows so the caller can scatter results back into input order.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from tokenizers import Tokenizer

from umr.errors import BundleError, InputTypeError, InputValueError

#: Graph inputs this module knows how to fill.
TEXT_INPUTS: tuple[str, ...] = ("input_ids", "attention_mask", "token_type_ids", "pool_mask")
_PROBE = "a"  # any text that yields one content token; finds where special tokens sit


@dataclass(frozen=True)
class Batch:
    """One padded batch: ``rows[i]`` is the input position of feeds' row ``i``."""

    rows: np.ndarray
    feeds: dict[str, np.ndarray]


def validate_texts(texts: Any) -> list[str]:
    """``texts`` as a list of str, or a typed error naming the first bad item.

    A bare ``str``/``bytes`` is refused (iterating it would embed characters one by
    one). Text that cannot be encoded as UTF-8 (a lone surrogate) is refused too.
    """
    if isinstance(texts, (str, bytes, bytearray, memoryview)):
        raise InputTypeError(
            f"texts must be a list of str, got a bare {type(texts).__name__}; "
            f"pass [text] to embed one text"
        )
    if not isinstance(texts, Iterable):
        raise InputTypeError(f"texts must be a list of str, got {type(texts).__name__}")
    items = list(texts)
    for i, t in enumerate(items):
        if not isinstance(t, str):
            raise InputTypeError(f"texts[{i}] must be str, got {type(t).__name__}")
    _check_utf8(items)
    return items


def validate_instruction(instruction: Any) -> str | None:
    """``instruction`` if it is None or a UTF-8 encodable str, else a typed error."""
    if instruction is None:
        return None
    if not isinstance(instruction, str):
        raise InputTypeError(f"instruction must be str or None, got {type(instruction).__name__}")
    try:
        instruction.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputValueError(
            f"instruction is not valid Unicode text: {exc.reason} at character {exc.start}"
        ) from None
    return instruction


def check_batch_size(batch_size: Any) -> int:
    """``batch_size`` if it is a positive int, else ``ValueError``."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    return batch_size


def _check_utf8(items: list[str]) -> None:
    # One encode of the joined texts is fast; only on failure look for the culprit.
    try:
        "".join(items).encode("utf-8")
    except UnicodeEncodeError:
        for i, t in enumerate(items):
            try:
                t.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise InputValueError(
                    f"texts[{i}] is not valid Unicode text: {exc.reason} at character "
                    f"{exc.start} ({t[exc.start : exc.end]!r}); expected UTF-8 encodable str"
                ) from None


class TextTokenizer:
    """Turns texts into padded int64 feeds for the graph inputs ``input_names``."""

    def __init__(self, tokenizer: Tokenizer, max_length: int, input_names: Sequence[str]) -> None:
        unknown = [n for n in input_names if n not in TEXT_INPUTS]
        if unknown or "input_ids" not in input_names:
            raise BundleError(
                f"graph inputs {list(input_names)} are not supported for text; "
                f"expected input_ids plus any of {TEXT_INPUTS[1:]}"
            )
        pad = tokenizer.padding
        self._pad_id = int(pad["pad_id"]) if pad else (tokenizer.token_to_id("[PAD]") or 0)
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length)
        self._tok = tokenizer
        self.max_length = max_length
        self.input_names = tuple(input_names)
        self._lead, self._trail = _special_layout(tokenizer)
        self._prefix_cache: dict[str, list[int]] = {}

    @classmethod
    def from_file(
        cls, path: str | os.PathLike[str], max_length: int, input_names: Sequence[str]
    ) -> TextTokenizer:
        """Load a ``tokenizer.json`` file."""
        try:
            tok = Tokenizer.from_file(os.fspath(path))
        except Exception as exc:  # tokenizers raises a bare Exception on bad JSON
            raise BundleError(f"{path}: not a valid tokenizer.json ({exc})") from None
        return cls(tok, max_length, input_names)

    def encode(
        self, texts: list[str], instruction: str | None = None
    ) -> tuple[list[list[int]], int]:
        """Token ids per text, and the number of instruction tokens after the leading specials.

        The instruction's tokens (no special tokens of their own) go right after the
        leading special token(s); the text is cut so the total stays within
        ``max_length``.
        """
        if len(texts) == 1:  # skips the thread pool for single queries
            ids = [self._tok.encode(texts[0]).ids]
        else:
            ids = [e.ids for e in self._tok.encode_batch(texts)]
        if not instruction:
            return ids, 0
        prefix = self._prefix(instruction)
        k, lead, trail = len(prefix), self._lead, self._trail
        room = self.max_length - lead - trail - k
        out = []
        for row in ids:
            end = len(row) - trail
            out.append(row[:lead] + prefix + row[lead:end][:room] + row[end:])
        return out, k

    def _prefix(self, instruction: str) -> list[int]:
        ids = self._prefix_cache.get(instruction)
        if ids is None:
            ids = self._tok.encode(instruction, add_special_tokens=False).ids
            if len(ids) > self.max_length - self._lead - self._trail - 1:
                raise InputValueError(
                    f"instruction is {len(ids)} tokens; it must leave room for text within "
                    f"max_seq_length {self.max_length}"
                )
            if len(self._prefix_cache) > 64:  # callers use a handful; don't grow unbounded
                self._prefix_cache.clear()
            self._prefix_cache[instruction] = ids
        return ids

    def batches(
        self,
        texts: list[str],
        *,
        instruction: str | None = None,
        batch_size: int = 32,
        max_tokens: int | None = None,
    ) -> Iterator[Batch]:
        """Padded batches, longest texts first, of at most ``batch_size`` texts and at
        most ``max_tokens`` padded tokens (always at least one text)."""
        check_batch_size(batch_size)
        ids, k = self.encode(texts, instruction)
        lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        order = np.argsort(-lengths, kind="stable")
        start = 0
        while start < len(order):
            # Sorted longest first, so the first row sets the batch's padded width.
            rows_fit = (
                batch_size if max_tokens is None else max_tokens // int(lengths[order[start]])
            )
            rows = order[start : start + max(1, min(batch_size, rows_fit))]
            start += len(rows)
            yield Batch(rows, self._feeds([ids[r] for r in rows], lengths[rows], k))

    def _feeds(self, ids: list[list[int]], lengths: np.ndarray, k: int) -> dict[str, np.ndarray]:
        width = int(lengths.max())
        input_ids = np.full((len(ids), width), self._pad_id, dtype=np.int64)
        for i, row in enumerate(ids):
            input_ids[i, : len(row)] = row
        attention = (np.arange(width) < lengths[:, None]).astype(np.int64)
        feeds = {"input_ids": input_ids}
        if "attention_mask" in self.input_names:
            feeds["attention_mask"] = attention
        if "token_type_ids" in self.input_names:
            feeds["token_type_ids"] = np.zeros_like(input_ids)
        if "pool_mask" in self.input_names:
            pool = attention.copy() if k else attention
            pool[:, self._lead : self._lead + k] = 0
            feeds["pool_mask"] = pool
        return feeds


def _special_layout(tok: Tokenizer) -> tuple[int, int]:
    """How many special tokens the post-processor puts before and after a text."""
    enc = tok.encode(_PROBE)
    mask = enc.special_tokens_mask
    content = [i for i, m in enumerate(mask) if not m]
    if not content:
        return (len(mask), 0)
    return content[0], len(mask) - content[-1] - 1
