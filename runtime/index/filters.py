"""Metadata filters: ``{"key": value}`` means equality on every key (a conjunction).

One meaning for every backend:

- a key is an identifier, or a dotted path of identifiers (``"meta.lang"`` looks inside a
  nested dict); keys are restricted so the Milvus backend can put them in an expression;
- a value is a str, bool, int (int64 range) or finite float;
- numbers compare by value (``1 == 1.0``) but a bool matches only a bool, and a string
  only a string (``"1"`` never matches ``1``);
- an item without the field (or whose field is a list, dict or null) never matches.

:class:`MetadataIndex` answers a filter from per-key inverted lists built on first use,
so a filtered search costs a dict lookup per key instead of a scan over all metadata.
"""

from __future__ import annotations

import math
import re
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np

from umr.errors import InputTypeError, InputValueError

FilterValue = str | int | float | bool
Filter = Mapping[str, FilterValue]

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_INT64 = (-(2**63), 2**63 - 1)
_MISSING = object()


def check_filter(filter: object) -> dict[str, FilterValue] | None:
    """Return ``filter`` as a plain dict after checking it, or None for no filter.

    Raises InputTypeError/InputValueError naming the offending key or value; an empty
    mapping means no filter.
    """
    if filter is None:
        return None
    if not isinstance(filter, Mapping):
        raise InputTypeError(
            f"filter: expected a mapping of field -> value, got {type(filter).__name__}"
        )
    out: dict[str, FilterValue] = {}
    for key, value in filter.items():
        out[check_key(key)] = check_value(key, value)
    return out or None


def check_key(key: object) -> str:
    """Return ``key`` if it is an identifier or a dotted path of identifiers."""
    if not isinstance(key, str):
        raise InputTypeError(f"filter key {key!r}: expected a str, got {type(key).__name__}")
    if not _KEY.fullmatch(key):
        raise InputValueError(
            f"filter key {key!r}: expected an identifier or dotted path of identifiers "
            "(letters, digits, underscores; e.g. 'lang' or 'meta.lang')"
        )
    return key


def check_value(key: str, value: object) -> FilterValue:
    """Return ``value`` as a plain str/bool/int/float, or raise naming ``key``."""
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        if not _INT64[0] <= int(value) <= _INT64[1]:
            raise InputValueError(f"filter[{key!r}]: int {value} is outside the int64 range")
        return int(value)
    if isinstance(value, float | np.floating):
        if not math.isfinite(value):
            raise InputValueError(f"filter[{key!r}]: expected a finite number, got {value}")
        return float(value)
    if isinstance(value, str):
        return value
    raise InputTypeError(
        f"filter[{key!r}]: expected a str, int, float or bool, got {type(value).__name__}"
    )


def path_of(key: str) -> tuple[str, ...]:
    """The nested field names of a checked key (``"a.b"`` -> ``("a", "b")``)."""
    return tuple(key.split("."))


def lookup(metadata: Any, path: Sequence[str]) -> Any:
    """The value at ``path`` inside nested dicts, or a sentinel when absent."""
    node = metadata
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def canonical(value: Any) -> Hashable | None:
    """A hashable key under which equal filter values meet; None for unmatchable values.

    The type tag keeps ``True`` apart from ``1`` and ``"1"`` apart from ``1``; ints and
    floats share a tag because Python already hashes ``1`` and ``1.0`` alike.
    """
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, int | float):
        return ("n", value)
    if isinstance(value, str):
        return ("s", value)
    return None


def matches(metadata: Any, flt: Mapping[str, FilterValue]) -> bool:
    """True if ``metadata`` satisfies every key of a checked filter (the reference)."""
    for key, want in flt.items():
        got = canonical(lookup(metadata, path_of(key)))
        if got is None or got != canonical(want):
            return False
    return True


class MetadataIndex:
    """Inverted lists ``key -> {canonical value: [labels]}``, one per key once it is used.

    Only mutated under the owning index's write lock (``extend``/``clear``); a key's
    lists are built under the read lock by whichever search first needs them, into a
    fresh dict published by one assignment, so concurrent searches see it whole or not.
    """

    def __init__(self) -> None:
        self._by_key: dict[str, dict[Hashable, list[int]]] = {}

    def clear(self) -> None:
        """Forget every list (they are rebuilt on demand)."""
        self._by_key = {}

    def extend(self, start: int, metadata: Sequence[Any]) -> None:
        """Index labels ``start..`` holding ``metadata`` under every key built so far."""
        for key, lists in self._by_key.items():
            _add(lists, path_of(key), start, metadata)

    def labels(self, flt: Mapping[str, FilterValue], metadata: np.ndarray) -> np.ndarray:
        """Labels (dead ones included, sorted) whose metadata satisfies ``flt``.

        ``metadata`` is the table's label -> metadata array, used to build missing keys.
        """
        out: np.ndarray | None = None
        for key, value in flt.items():
            lists = self._by_key.get(key)
            if lists is None:
                lists = {}
                _add(lists, path_of(key), 0, metadata)
                self._by_key = {**self._by_key, key: lists}
            found = np.asarray(lists.get(canonical(value), ()), dtype=np.int64)
            out = found if out is None else np.intersect1d(out, found, assume_unique=True)
            if not len(out):
                break
        return np.empty(0, dtype=np.int64) if out is None else out


def _add(
    lists: dict[Hashable, list[int]], path: tuple[str, ...], start: int, metadata: Sequence[Any]
) -> None:
    for offset, meta in enumerate(metadata):
        if meta is None:
            continue
        key = canonical(lookup(meta, path))
        if key is not None:
            lists.setdefault(key, []).append(start + offset)
