"""The stdlib corpora: deterministic, non-empty, unique passages, one query per topic."""

from __future__ import annotations

from umr.corpus import python_reference_passages, python_reference_queries, stdlib_docstrings


def test_passages_are_unique_bounded_and_cover_every_topic():
    passages = python_reference_passages(max_words=80)
    assert len(passages) > 300
    assert len({p.id for p in passages}) == len({p.text for p in passages}) == len(passages)
    queries = python_reference_queries()
    assert {q.topic for q in queries} == {p.topic for p in passages}
    # A passage only exceeds the bound when one paragraph alone does.
    for p in passages:
        assert p.text.strip() and p.id.startswith(p.topic + "#")


def test_queries_are_short_headings():
    queries = python_reference_queries()
    assert all(0 < len(q.text.split()) <= 12 for q in queries)
    assert any(q.text == 'The "assert" statement' for q in queries)


def test_docstrings_are_deterministic_and_limited():
    first = stdlib_docstrings(limit=200)
    assert first == stdlib_docstrings(limit=200)
    assert len(first) == 200 and all(len(d) >= 20 and "\n" not in d for d in first)
