"""The multimodal ``umr demo``: the Google emoji drawings of the emoji test split as a corpus,
queried by name, by the Twitter drawing, and by a drawing plus "medium-dark skin tone".

The test split (``umr data emoji``) holds 600 emoji never seen in training. Queries and
their instructions come from its records (tasks ``qt->ci``, ``qi->ci`` and ``(qi,qt)->ci``
whose positive is a Google drawing), so the demo asks exactly what the model was evaluated on.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from umr.errors import DataError

GOOGLE = "images/google/"
SHOWN_PER_KIND = 3
_LATENCY_ROUNDS = 20


@dataclass(frozen=True)
class Query:
    """One demo query: text and/or image (relative to the data folder) and the right answer."""

    text: str | None
    image: str | None
    instruction: str | None
    answer: str  # corpus id

    def label(self) -> str:
        parts = [self.image and f"[{self.image.removeprefix('images/')}]", self.text]
        return " + ".join(repr(p) if p == self.text else p for p in parts if p)


@dataclass(frozen=True)
class Kind:
    """A kind of query: its title and its queries."""

    title: str
    queries: list[Query]


def _id(image: str) -> str:
    return Path(image).stem


def read_split(data: Path) -> tuple[dict[str, str], list[Kind]]:
    """The corpus (``{image: name}``, every Google drawing of the test split) and the queries."""
    path = data / "test.jsonl"
    if not path.is_file():
        raise DataError(
            f"{path} is missing: build the emoji data set first with "
            f"`umr data emoji --out {data}` (or `make data`)"
        )
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    google = [r for r in records if r["positive"].get("image", "").startswith(GOOGLE)]
    names = {r["positive"]["image"]: r["query"]["text"] for r in google if r["task"] == "qt->ci"}
    pairs = [r for r in google if r["task"] == "(qi,qt)->ci"]
    for r in pairs:  # a skin-tone variant is named after its base emoji
        base = names.get(r["query"]["image"], _id(r["query"]["image"]))
        names.setdefault(r["positive"]["image"], f"{base}: {r['query']['text']}")
    for r in records:  # and every other Google drawing the split mentions
        for side in (r["query"], r["positive"]):
            if side.get("image", "").startswith(GOOGLE):
                names.setdefault(side["image"], _id(side["image"]))

    def queries(task: str) -> list[Query]:
        return [
            Query(
                r["query"].get("text"),
                r["query"].get("image"),
                r["query"].get("instruction"),
                _id(r["positive"]["image"]),
            )
            for r in google
            if r["task"] == task
        ]

    kinds = [
        Kind("text -> image        (name -> Google drawing)", queries("qt->ci")),
        Kind("image -> image       (Twitter drawing -> Google drawing)", queries("qi->ci")),
        Kind(
            "text+image -> image  (Google drawing + skin tone -> that variant)",
            queries("(qi,qt)->ci"),
        ),
    ]
    return names, kinds


def shown(kind: Kind) -> list[Query]:
    """A few queries spread over the split (for pairs: the medium-dark skin tone ones)."""
    pool = [q for q in kind.queries if q.text == "medium-dark skin tone"] or kind.queries
    step = max(1, len(pool) // SHOWN_PER_KIND)
    return pool[step // 2 :: step][:SHOWN_PER_KIND]


def embed_queries(embedder: Any, data: Path, queries: list[Query]) -> np.ndarray:
    """Vectors of queries sharing one instruction and modality, in one call."""
    if not queries:
        return np.empty((0, embedder.dim), dtype=np.float32)
    first = queries[0]
    if first.image is None:
        return embedder.embed_text([q.text for q in queries], instruction=first.instruction)
    texts = [q.text or "" for q in queries]  # an image alone is a pair with the text ""
    images = [data / q.image for q in queries]  # type: ignore[operator]
    return embedder.embed_fused(texts, images, instruction=first.instruction)


def build_or_load(embedder: Any, data: Path, names: dict[str, str], path: Path) -> Any:
    """The index of every corpus image, cached at ``path``."""
    from umr.runtime import Index
    from umr.runtime.cli.indexing import embed_into
    from umr.runtime.index import load as load_index
    from umr.runtime.input_files import Item

    from umr.errors import IndexCorruptError

    if path.is_dir():
        try:
            index = load_index(path)
            if len(index) == len(names):
                print(f"loaded cached index {path} ({len(index)} images)")
                return index
        except IndexCorruptError as exc:
            print(f"cached index unusable ({exc}); rebuilding")
    items = [
        Item(_id(image), "", {"name": name}, image=data / image)
        for image, name in sorted(names.items())
    ]
    index = Index.create(embedder.dim, capacity=len(items))
    t0 = time.perf_counter()
    embed_into(index, embedder, items, unit="image", source=str(data))
    secs = time.perf_counter() - t0
    print(
        f"embedded and indexed {len(items)} Google emoji drawings of the test split in "
        f"{secs:.1f} s ({len(items) / secs:.0f} images/s)"
    )
    index.save(path)
    return index


def show_hits(embedder: Any, index: Any, data: Path, kinds: list[Kind], k: int) -> None:
    for kind in kinds:
        queries = shown(kind)
        print(f"\n== {kind.title}")
        if queries and queries[0].instruction:
            print(f"   instruction: {queries[0].instruction!r}")
        for query, hits in zip(
            queries, index.search(embed_queries(embedder, data, queries), k=k), strict=True
        ):
            print(f"? {query.label()}    (answer: {query.answer})")
            for hit in hits:
                mark = "✓" if hit.id == query.answer else " "
                name = (hit.metadata or {}).get("metadata", {}).get("name", "")
                print(f"  {mark} {hit.score:.3f}  {hit.id!s:<24} {name[:60]}")


def recall_table(embedder: Any, index: Any, data: Path, kinds: list[Kind]) -> None:
    print(f"\nretrieval over every such test query (corpus: {len(index)} Google drawings):")
    for kind in kinds:
        if not kind.queries:
            continue
        vecs = embed_queries(embedder, data, kind.queries)
        ranks = []
        for query, hits in zip(kind.queries, index.search(vecs, k=10), strict=True):
            ids = [h.id for h in hits]
            ranks.append(ids.index(query.answer) + 1 if query.answer in ids else 11)
        r = np.array(ranks)
        print(
            f"  {kind.title.split('(')[0].strip():<20} {len(r):>4} queries   "
            f"R@1 {np.mean(r <= 1):.3f}   R@5 {np.mean(r <= 5):.3f}   R@10 {np.mean(r <= 10):.3f}"
        )


def latency_table(
    embedder: Any, index: Any, data: Path, kinds: list[Kind], fmt: Callable[[list[float]], str]
) -> None:
    print(
        f"\nlatency per query (batch 1, {embedder.variant}, {embedder.provider}, "
        f"{embedder.threads} threads, {len(index)} images, k=10):"
    )
    for kind in kinds:
        queries = shown(kind)
        embed_s, search_s = [], []
        for _ in range(_LATENCY_ROUNDS):
            for query in queries:
                t0 = time.perf_counter()
                vec = embed_queries(embedder, data, [query])
                t1 = time.perf_counter()
                index.search(vec, k=10)
                embed_s.append(t1 - t0)
                search_s.append(time.perf_counter() - t1)
        label = kind.title.split("(")[0].strip()
        print(f"  {label:<20} embed   {fmt(embed_s)}")
        print(f"  {'':<20} search  {fmt(search_s)}")


def run(
    embedder: Any, data: Path, workdir: Path, k: int, fmt: Callable[[list[float]], str]
) -> None:
    """The whole multimodal demo; ``fmt`` formats latency samples (seconds)."""
    names, kinds = read_split(data)
    var = embedder.manifest.variant(embedder.variant)
    digest = embedder.manifest.files[var.image_file][:12]
    index = build_or_load(embedder, data, names, workdir / f"emoji-{embedder.variant}-{digest}")
    show_hits(embedder, index, data, kinds, k)
    recall_table(embedder, index, data, kinds)
    latency_table(embedder, index, data, kinds, fmt)
