"""Counting tokens per text, for ``usage`` in responses and the batcher's token budget.

The count is what the model sees: the bundle's own tokenizer, special tokens included,
truncated at ``max_seq_length``. Counting re-tokenizes (the embedder keeps its tokens
to itself); in Rust that is a few microseconds per short text.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol


class TokenCounter(Protocol):
    """Anything that counts tokens per text."""

    def count(self, texts: Sequence[str]) -> list[int]:
        """Tokens per text, in order."""
        ...


class BundleTokenCounter:
    """Counts with a bundle's ``tokenizer.json``, truncated like the embedder truncates."""

    def __init__(self, tokenizer_path: str | os.PathLike[str], max_length: int) -> None:
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(os.fspath(tokenizer_path))
        tok.no_padding()
        tok.enable_truncation(max_length)
        self._tok = tok

    @classmethod
    def for_bundle(cls, bundle_dir: str | os.PathLike[str], manifest: object) -> BundleTokenCounter:
        """The counter for ``bundle_dir`` described by ``manifest`` (a BundleManifest)."""
        path = Path(bundle_dir) / manifest.tokenizer  # type: ignore[attr-defined]
        return cls(path, manifest.max_seq_length)  # type: ignore[attr-defined]

    def count(self, texts: Sequence[str]) -> list[int]:
        """Tokens per text, special tokens included."""
        if not texts:
            return []
        if len(texts) == 1:  # skips the tokenizer's thread pool
            return [len(self._tok.encode(texts[0]))]
        return [len(e) for e in self._tok.encode_batch(list(texts))]


class ApproxTokenCounter:
    """About four characters per token, capped: for embedders without a tokenizer file
    (test doubles). Never zero, so every text costs something in the batch budget."""

    def __init__(self, max_length: int = 512) -> None:
        self.max_length = max_length

    def count(self, texts: Sequence[str]) -> list[int]:
        """An estimate per text: ``len // 4 + 2``, at most ``max_length``."""
        return [min(len(t) // 4 + 2, self.max_length) for t in texts]
