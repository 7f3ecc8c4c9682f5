"""The fixed text sets every engine sees, and their token counts.

All sets come from :mod:`umr.corpus` (texts that ship with Python), picked by fixed
rules so two runs on the same Python measure the same texts. Token counts use the
bundle's own tokenizer with truncation to ``max_seq_length`` and are computed once,
so every engine is credited with the same number of tokens.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from umr.corpus import python_reference_passages, python_reference_queries, stdlib_docstrings
from umr.errors import InputValueError

MAX_QUERY_TOKENS = 16
# fp32 vectors of this many further docstrings seed the index; more would cost minutes
# of embedding for little extra diversity (the synthetic recipe fills up to 100k).
MAX_EXTRA = 3000


@dataclass(frozen=True)
class BenchTexts:
    """Text sets for one benchmark run (all plain lists of strings, JSON-serialisable).

    ``corpus``: mixed-length docstrings for throughput. ``short_queries``: <= 16-token
    queries for batch-1 latency. ``passages``/``queries`` with their ``topic`` lists:
    the retrieval-quality set. ``extra``: more docstrings whose fp32 vectors seed the
    index (empty in quick runs).
    """

    corpus: list[str]
    short_queries: list[str]
    passages: list[str]
    passage_topics: list[str]
    queries: list[str]
    query_topics: list[str]
    extra: list[str]

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the sets as JSON (workers read them from this file)."""
        Path(path).write_text(json.dumps(asdict(self)), encoding="utf-8")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> BenchTexts:
        """Read sets written by :meth:`save`."""
        return cls(**json.loads(Path(path).read_text(encoding="utf-8")))

    def named(self, name: str) -> list[str]:
        """One set by field name; the error lists the names that exist."""
        sets = {k: v for k, v in asdict(self).items() if not k.endswith("_topics")}
        if name not in sets:
            raise InputValueError(f"text set {name!r} unknown; expected one of {sorted(sets)}")
        return sets[name]


def spread(items: list[str], n: int) -> list[str]:
    """``n`` items taken at an even stride over ``items`` (all of them if fewer)."""
    if n <= 0:
        raise InputValueError(f"asked for {n} texts; expected a positive count")
    if n >= len(items):
        return list(items)
    step = len(items) / n
    return [items[int(k * step)] for k in range(n)]


def select_texts(
    tokenizer: object, n_docs: int, n_short: int, with_extra: bool, topic_stride: int = 1
) -> BenchTexts:
    """Build the fixed sets; ``tokenizer`` is a ``tokenizers.Tokenizer`` used to keep
    short queries at <= 16 tokens (special tokens included). ``topic_stride`` > 1 keeps
    every n-th reference topic only (quick runs: the reference engine is slow on passages).
    """
    docs = stdlib_docstrings()
    corpus = spread(docs, n_docs)
    all_queries = python_reference_queries()
    queries = all_queries[::topic_stride]
    kept = {q.topic for q in queries}
    passages = [p for p in python_reference_passages() if p.topic in kept]
    short = short_queries(tokenizer, [q.text for q in all_queries], docs, n_short)
    chosen = set(corpus)
    return BenchTexts(
        corpus=corpus,
        short_queries=short,
        passages=[p.text for p in passages],
        passage_topics=[p.topic for p in passages],
        queries=[q.text for q in queries],
        query_topics=[q.topic for q in queries],
        extra=spread([d for d in docs if d not in chosen], MAX_EXTRA) if with_extra else [],
    )


def short_queries(tokenizer: object, headings: list[str], docs: list[str], n: int) -> list[str]:
    """Reference headings plus first sentences of docstrings, each <= 16 tokens."""
    firsts = [d.split(". ")[0].rstrip(".") for d in docs]
    out: list[str] = []
    for text in [*headings, *spread(firsts, 4 * n)]:
        if text and len(tokenizer.encode(text).ids) <= MAX_QUERY_TOKENS and text not in out:
            out.append(text)
    return out[:n]


def token_lengths(tokenizer: object, texts: list[str], max_len: int) -> list[int]:
    """Tokens per text after truncation to ``max_len`` (special tokens included)."""
    return [min(len(e.ids), max_len) for e in tokenizer.encode_batch(texts)]
