"""Real text corpora that ship with Python itself, so demos and benchmarks need no download.

- The Python language reference topics (``pydoc_data.topics``), split into passages,
  with one query per topic (its heading) whose positives are that topic's passages.
- Docstrings of the standard library's own source files, read with ``ast`` (nothing is
  imported or executed): tens of thousands of real texts of mixed length.
"""

from __future__ import annotations

import ast
import re
import sysconfig
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Passage:
    """One retrievable passage: ``id`` is ``"<topic>#<n>"``."""

    id: str
    topic: str
    text: str


@dataclass(frozen=True)
class Query:
    """A query with the topic whose passages count as relevant."""

    text: str
    topic: str


_RULE = re.compile(r"^[*=\-]{3,}$")


def _topics() -> dict[str, str]:
    from pydoc_data.topics import topics

    return dict(sorted(topics.items()))


def _paragraphs(text: str) -> list[str]:
    """Blank-line separated blocks, whitespace collapsed, heading rules dropped."""
    out = []
    for block in re.split(r"\n\s*\n", text):
        lines = [ln.strip() for ln in block.splitlines() if not _RULE.match(ln.strip())]
        para = " ".join(ln for ln in lines if ln)
        if para:
            out.append(para)
    return out


def python_reference_passages(max_words: int = 120) -> list[Passage]:
    """The language reference topics packed into passages of at most ``max_words`` words.

    A single paragraph longer than ``max_words`` stays whole (the embedder truncates it).
    Passages whose text already appeared under an earlier topic are dropped.
    """
    passages: list[Passage] = []
    seen: set[str] = set()

    def emit(topic: str, chunk: list[str]) -> None:
        # Broad topics repeat specific ones verbatim ("compound" holds "try", "for", ...).
        text = " ".join(chunk)
        if text not in seen:
            seen.add(text)
            passages.append(Passage(f"{topic}#{len(passages)}", topic, text))

    # Specific topics first, so text shared with a broader topic stays with the specific one.
    for topic, text in sorted(_topics().items(), key=lambda kv: (len(kv[1]), kv[0])):
        chunk: list[str] = []
        n = 0
        for para in _paragraphs(text):
            words = len(para.split())
            if chunk and n + words > max_words:
                emit(topic, chunk)
                chunk, n = [], 0
            chunk.append(para)
            n += words
        if chunk:
            emit(topic, chunk)
    return passages


def python_reference_queries() -> list[Query]:
    """One query per topic that owns passages: its heading (``The "assert" statement``).

    Topics whose every passage was a duplicate of another topic's get no query, so each
    query has at least one relevant passage in :func:`python_reference_passages`.
    """
    owned = {p.topic for p in python_reference_passages()}
    queries = []
    for topic, text in _topics().items():
        if topic not in owned:
            continue
        first = text.strip().splitlines()[0].strip() if text.strip() else ""
        heading = first if 0 < len(first.split()) <= 12 else topic.replace("-", " ")
        queries.append(Query(heading, topic))
    return queries


def stdlib_docstrings(limit: int | None = None, min_chars: int = 20) -> list[str]:
    """Docstrings of the standard library's modules, classes and functions.

    Read from source with ``ast`` in a fixed file order, so the list is the same on
    every run with the same Python. Whitespace is collapsed.
    """
    root = Path(sysconfig.get_paths()["stdlib"])
    out: list[str] = []
    for path in sorted(root.rglob("*.py")):
        if "site-packages" in path.parts or "test" in path.parts or "tests" in path.parts:
            continue
        try:
            tree = ast.parse(path.read_bytes())
        except (SyntaxError, ValueError, OSError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc and len(doc) >= min_chars:
                    out.append(" ".join(doc.split()))
                    if limit is not None and len(out) >= limit:
                        return out
    return out
