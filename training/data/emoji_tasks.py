"""Turn the emoji and icon catalogues into records for every task, split by identity.

An identity is one emoji (its base image, every skin variant, both styles) or one icon
(outline and filled twin). Test identities never appear in train records, so a test
score measures retrieval of things the model has not been trained on.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from umr.training.data.emoji_extract import Emoji, Icon, Variant
from umr.training.data.records import Record, Side

from umr.errors import DataError

# One fixed instruction per task, given to every query of that task (never to candidates).
TASK_INSTRUCTIONS: Mapping[str, str] = {
    "qt->ci": "Find the image of this emoji or icon.",
    "qt->ct": "Find the name of the emoji or icon this keyword describes.",
    "qt->(ci,ct)": "Find the emoji or icon with this name, shown with its category.",
    "qi->ct": "Find the name of the emoji or icon in this image.",
    "qi->ci": "Find the same emoji drawn in another style.",
    "(qi,qt)->ct": "Find the text that answers this question about the image.",
    "(qi,qt)->ci": "Find this emoji or icon changed as the text describes.",
    "(qi,qt)->(ci,ct)": "Find the image and text that match this image changed as described.",
}

KeywordFilter = Callable[[str], bool]
_Pair = tuple[str | None, Path | None]


def emoji_id(emoji: Emoji) -> str:
    """Identity of an emoji: ``emoji:<unified code points>``."""
    return f"emoji:{emoji.unified}"


def icon_id(icon: Icon) -> str:
    """Identity of an icon: ``icon:<name>``."""
    return f"icon:{icon.name}"


def split_identities(ids: Sequence[str], n_test: int, seed: int, what: str) -> set[str]:
    """The ``n_test`` identities drawn for test; the same seed always gives the same draw.

    Raises:
        DataError: more test identities asked for than there are.
    """
    if not 0 <= n_test <= len(ids):
        raise DataError(f"{what}: asked for {n_test} test identities, but there are {len(ids)}")
    order = sorted(ids)  # sorted first so the draw does not depend on catalogue order
    random.Random(seed).shuffle(order)
    return set(order[:n_test])


def _record(
    task: str,
    meta: dict[str, Any],
    query: _Pair,
    candidate: _Pair,
    negatives: Sequence[Path] = (),
) -> Record:
    return Record(
        task=task,
        query=Side(text=query[0], image=query[1], instruction=TASK_INSTRUCTIONS[task]),
        positive=Side(text=candidate[0], image=candidate[1]),
        negatives=tuple(Side(image=n) for n in negatives),
        meta=meta,
    )


def _meta(identity: str, styles: list[str], source: str) -> dict[str, Any]:
    return {"identity": identity, "styles": styles, "source": source}


def emoji_records(
    emoji: Emoji, images: Path, *, train: bool, keyword_ok: KeywordFilter
) -> Iterator[Record]:
    """Every record of one emoji; ``images`` is the dataset's images/ folder."""
    ident = emoji_id(emoji)
    paths = {style: images / style / file for style, file in emoji.images.items()}
    for style, img in paths.items():
        meta = _meta(ident, [style], "emoji")
        yield _record("qt->ci", meta, (emoji.name, None), (None, img))
        if train:
            for word in emoji.keywords:
                yield _record("qt->ci", meta, (word, None), (None, img))
        yield _record("qi->ct", meta, (None, img), (emoji.name, None))
        yield _record("qt->(ci,ct)", meta, (emoji.name, None), (emoji.category, img))
        for var in emoji.variants:
            if style in var.images:
                target = images / style / var.images[style]
                negs = _variant_negatives(emoji, images, var, style, img) if train else ()
                yield _record("(qi,qt)->ci", meta, (var.modifier, img), (None, target), negs)
    for word in filter(keyword_ok, emoji.keywords):
        yield _record("qt->ct", _meta(ident, [], "emoji"), (word, None), (emoji.name, None))
    yield from _cross_style(ident, paths, train=train)


def _variant_negatives(
    emoji: Emoji, images: Path, chosen: Variant, style: str, base: Path
) -> list[Path]:
    """Near misses for "base + modifier -> variant": the base itself, the other
    variants in this style, and this variant in the other styles.

    Random in-batch negatives almost never hold a sibling variant, so without these the
    model learns "same emoji" and never has to read the modifier or keep the style.
    """
    out = [base]
    for var in emoji.variants:
        for other, file in sorted(var.images.items()):
            if (var is chosen) != (other == style):
                out.append(images / other / file)
    return out


def _cross_style(ident: str, paths: dict[str, Path], *, train: bool) -> Iterator[Record]:
    if "twitter" not in paths or "google" not in paths:
        return
    meta = _meta(ident, ["twitter", "google"], "emoji")
    yield _record("qi->ci", meta, (None, paths["twitter"]), (None, paths["google"]))
    if train:  # test keeps one direction so each test query has one well-defined pool
        yield _record("qi->ci", meta, (None, paths["google"]), (None, paths["twitter"]))


def icon_records(
    icon: Icon, images: Path, *, train: bool, keyword_ok: KeywordFilter
) -> Iterator[Record]:
    """Every record of one icon; ``images`` is the dataset's images/ folder."""
    ident = icon_id(icon)
    paths = {style: images / "icons" / style / f"{icon.name}.png" for style in icon.styles}
    outline = paths["outline"]
    meta = _meta(ident, ["outline"], "icons")
    yield _record("qt->ci", meta, (icon.text, None), (None, outline))
    if train:
        for tag in icon.tags:
            yield _record("qt->ci", meta, (tag, None), (None, outline))
    for style, img in paths.items():
        yield _record("qi->ct", _meta(ident, [style], "icons"), (None, img), (icon.text, None))
    yield _record("qt->(ci,ct)", meta, (icon.text, None), (icon.category, outline))
    if "filled" in paths:
        both = _meta(ident, ["outline", "filled"], "icons")
        # The outline itself is the near miss: the answer must differ from the query.
        negs = (outline,) if train else ()
        yield _record("(qi,qt)->ci", both, ("filled", outline), (None, paths["filled"]), negs)
    for tag in filter(keyword_ok, icon.tags):
        yield _record("qt->ct", _meta(ident, [], "icons"), (tag, None), (icon.text, None))


def unambiguous_keywords(emoji: Sequence[Emoji], icons: Sequence[Icon]) -> KeywordFilter:
    """Keywords that point at exactly one of these identities (and are no other's name).

    Test keyword queries use only these, so each has a single right answer in the test pool.
    """
    uses: Counter[str] = Counter()
    for e in emoji:
        uses.update({e.name, *e.keywords})
    for i in icons:
        uses.update({i.text, *i.tags})
    return lambda word: uses[word] == 1


def build_records(
    emoji: Sequence[Emoji], icons: Sequence[Icon], images: Path, test_ids: set[str]
) -> tuple[list[Record], list[Record]]:
    """(train, test) records; identities in ``test_ids`` go to test only."""
    test_emoji = [e for e in emoji if emoji_id(e) in test_ids]
    test_icons = [i for i in icons if icon_id(i) in test_ids]
    test_ok = unambiguous_keywords(test_emoji, test_icons)
    train: list[Record] = []
    test: list[Record] = []
    for e in emoji:
        is_test = emoji_id(e) in test_ids
        out, ok = (test, test_ok) if is_test else (train, _any_keyword)
        out.extend(emoji_records(e, images, train=not is_test, keyword_ok=ok))
    for i in icons:
        is_test = icon_id(i) in test_ids
        out, ok = (test, test_ok) if is_test else (train, _any_keyword)
        out.extend(icon_records(i, images, train=not is_test, keyword_ok=ok))
    return train, test


def _any_keyword(word: str) -> bool:
    return True


def task_counts(records: Sequence[Record]) -> dict[str, int]:
    """Number of records per task, in :data:`TASK_INSTRUCTIONS` order, zeros left out."""
    counts = Counter(r.task for r in records)
    return {task: counts[task] for task in TASK_INSTRUCTIONS if counts[task]}


def as_test_split(records: Sequence[Record]) -> list[Record]:
    """The records of these identities that :func:`build_records` writes for test ones.

    Training identities get more: ``qt->ci`` queries by keyword and tag as well as by
    name, ``qi->ci`` both ways (Google -> Twitter too), and ``qt->ct`` keywords shared
    with other identities. Dropping those gives recall on training identities that
    compares with the test split's (the same kinds of query, one right answer each).
    """
    names = {(_ident(r), r.positive.text) for r in records if r.task == "qi->ct"}
    # Which identities use each word as name or keyword, as unambiguous_keywords counts.
    words: dict[str, set[str]] = {}
    for r in records:
        text = r.positive.text if r.task == "qi->ct" else r.query.text
        if r.task in ("qi->ct", "qt->ci", "qt->ct") and text is not None:
            words.setdefault(text, set()).add(_ident(r))
    out = []
    for r in records:
        if r.task == "qt->ci" and (_ident(r), r.query.text) not in names:
            continue
        if (
            r.task == "qi->ci"
            and r.query.image is not None
            and r.query.image.parent.name == "google"
        ):
            continue  # the way back, which only training identities get
        if r.task == "qt->ct" and len(words.get(str(r.query.text), ())) != 1:
            continue
        out.append(r)
    return out


def _ident(rec: Record) -> str:
    return str(rec.meta.get("identity"))
