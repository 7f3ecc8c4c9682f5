"""Token ids for a training/eval batch: ``[CLS] [instruction] [text] [SEP]`` per row.

Each row may carry its own instruction (a batch mixes tasks). Instruction tokens are
attended to but zeroed in ``pool_mask``, the same layout the runtime uses.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from tokenizers import Tokenizer


class TextBatcher:
    """Encodes rows of (text, instruction); a row without text is ``[CLS] [SEP]``."""

    def __init__(self, tokenizer_json: str | os.PathLike[str], max_tokens: int) -> None:
        tok = Tokenizer.from_file(os.fspath(tokenizer_json))
        tok.no_padding()
        tok.no_truncation()
        self._tok = tok
        self.max_tokens = max_tokens
        self.cls_id = tok.token_to_id("[CLS]")
        self.sep_id = tok.token_to_id("[SEP]")
        pad = tok.token_to_id("[PAD]")
        self.pad_id = 0 if pad is None else pad
        self._cache: dict[str, list[int]] = {}

    def _ids(self, text: str) -> list[int]:
        ids = self._cache.get(text)
        if ids is None:
            ids = self._tok.encode(text, add_special_tokens=False).ids
            if len(self._cache) < 200_000:
                self._cache[text] = ids
        return ids

    def _row(self, text: str | None, instruction: str | None) -> tuple[list[int], int]:
        """``[CLS] [instruction] [text] [SEP]`` ids (the text cut to fit) and the
        instruction's length."""
        prefix = self._ids(instruction) if instruction else []
        room = max(self.max_tokens - 2 - len(prefix), 1)
        body = self._ids(text)[:room] if text else []
        return [self.cls_id, *prefix, *body, self.sep_id], len(prefix)

    def row_length(self, text: str | None, instruction: str | None) -> int:
        """The width :meth:`encode` gives this row on its own (specials included)."""
        return len(self._row(text, instruction)[0])

    def encode(
        self, texts: Sequence[str | None], instructions: Sequence[str | None]
    ) -> dict[str, torch.Tensor]:
        """``input_ids``, ``attention_mask``, ``pool_mask`` ``[B, L]`` and ``has_text`` ``[B]``."""
        rows, skips = [], []
        for text, instr in zip(texts, instructions, strict=True):
            row, skip = self._row(text, instr)
            rows.append(row)
            skips.append(skip)
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        attn = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
            attn[i, : len(r)] = 1
        pool = attn.clone()
        for i, k in enumerate(skips):
            pool[i, 1 : 1 + k] = 0
        has_text = torch.tensor([bool(t) for t in texts])
        return {"input_ids": ids, "attention_mask": attn, "pool_mask": pool, "has_text": has_text}
