"""How a umr index maps onto a Milvus collection: fields, ids, metrics and filter text.

Collection layout (one row per item):

- ``pk``: VARCHAR primary key, the id with its type: ``"i:42"`` for int 42 and ``"s:42"``
  for str "42" (the two are distinct ids, as in :class:`Index`);
- ``seq``: INT64 insertion stamp, so ``ids()`` can list oldest first;
- ``vector``: FLOAT_VECTOR with an HNSW index (M, efConstruction) and the space's metric;
- ``metadata``: nullable JSON, the dict given at ``add`` (filters look inside it).

The index settings umr needs back (space, M, ef_construction, ef) are also kept as the
collection property ``umr.settings``: milvus-lite does not echo HNSW params back.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from umr.errors import BackendError, DuplicateIdError, InputValueError, UnknownIdError

from .filters import FilterValue, path_of
from .validate import Id

PK, SEQ, VECTOR, METADATA = "pk", "seq", "vector", "metadata"
PK_MAX_BYTES = 4096  # VARCHAR max_length of the primary key (UTF-8 bytes)
JSON_MAX_BYTES = 65_536  # Milvus refuses larger JSON values (proxy.maxJSONFieldLength)
MAX_TOPK = 16_384  # Milvus's limit on k per search
BATCH_BYTES = 16 << 20  # per insert request, well under gRPC's 64 MiB message limit
METRICS = {"cosine": "COSINE", "ip": "IP", "l2": "L2"}
SETTINGS_KEY = "umr.settings"


@dataclass(frozen=True)
class Settings:
    """What a collection records about the umr index it holds."""

    space: str
    M: int
    ef_construction: int
    ef: int

    def to_property(self) -> dict[str, str]:
        """The collection property that stores these settings."""
        return {SETTINGS_KEY: json.dumps(asdict(self), sort_keys=True)}


def encode_id(item_id: Id, i: int = 0) -> str:
    """The primary key of ``item_id``; InputValueError if Milvus cannot store it."""
    pk = f"i:{item_id}" if isinstance(item_id, int) else f"s:{item_id}"
    try:
        size = len(pk.encode("utf-8"))
    except UnicodeEncodeError:
        raise InputValueError(f"ids[{i}]: id {item_id!r} is not valid UTF-8 text") from None
    if size > PK_MAX_BYTES:
        raise InputValueError(
            f"ids[{i}]: id is {size} bytes as a Milvus key; at most {PK_MAX_BYTES} fit"
        )
    return pk


def decode_id(pk: str) -> Id:
    """The id a primary key stands for (inverse of :func:`encode_id`)."""
    kind, _, text = pk.partition(":")
    if kind == "i":
        return int(text)
    if kind == "s":
        return text
    raise BackendError(f"primary key {pk!r} was not written by umr (expected 'i:' or 's:')")


def check_presence(ids: Sequence[Id], pks: Sequence[str], present: set[str], want: bool) -> None:
    """Raise as :class:`ItemTable` does for the first id that is (not) ``present`` or repeats."""
    seen: set[str] = set()
    for i, pk in enumerate(pks):
        if pk in present and not want:
            raise DuplicateIdError(f"ids[{i}]: id {ids[i]!r} is already in the index")
        if pk not in present and want:
            raise UnknownIdError(f"ids[{i}]: id {ids[i]!r} is not in the index")
        if pk in seen:
            raise DuplicateIdError(f"ids[{i}]: id {ids[i]!r} appears twice in this call")
        seen.add(pk)


def insert_batches(
    x: np.ndarray,
    pks: Sequence[str],
    meta: Sequence[dict[str, Any] | None],
    sizes: Sequence[int],
    seq: np.ndarray,
    max_rows: int,
) -> Iterator[list[dict[str, Any]]]:
    """Rows to insert, in requests of at most ``max_rows`` rows and about 16 MiB."""
    rows: list[dict[str, Any]] = []
    nbytes = 0
    for i, pk in enumerate(pks):
        rows.append({PK: pk, SEQ: int(seq[i]), VECTOR: x[i], METADATA: meta[i]})
        nbytes += x.shape[1] * 4 + 64 + sizes[i] + len(pk)
        if len(rows) >= max_rows or nbytes >= BATCH_BYTES:
            yield rows
            rows, nbytes = [], 0
    if rows:
        yield rows


def check_json_size(metadata: Sequence[dict[str, Any] | None]) -> list[int]:
    """Encoded size of each entry; InputValueError names one Milvus would refuse."""
    sizes = []
    for i, item in enumerate(metadata):
        size = 0 if item is None else len(json.dumps(item, ensure_ascii=False).encode())
        if size > JSON_MAX_BYTES:
            raise InputValueError(
                f"metadata[{i}]: {size} bytes of JSON; Milvus stores at most {JSON_MAX_BYTES}"
            )
        sizes.append(size)
    return sizes


def filter_expr(flt: Mapping[str, FilterValue]) -> str:
    """A Milvus boolean expression for a checked filter: ``metadata["k"] == v and ...``.

    Keys are identifiers (checked by :func:`~.filters.check_key`), so only values need
    quoting; milvus-lite does not support expression templates, so values become
    literals here.
    """
    terms = []
    for key, value in flt.items():
        field = METADATA + "".join(f'["{part}"]' for part in path_of(key))
        terms.append(f"{field} == {literal(value)}")
    return " and ".join(terms)


# Escapes that both Milvus's parser (Go strconv.Unquote) and milvus-lite's accept; any
# other character is legal inside a double-quoted literal as it stands.
_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"})


def literal(value: FilterValue) -> str:
    """``value`` as a Milvus expression literal (strings double-quoted and escaped)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return '"' + value.translate(_ESCAPES) + '"'


def build_schema(client: Any, dim: int) -> Any:
    """The collection schema described in this module's docstring."""
    from pymilvus import DataType

    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field(PK, DataType.VARCHAR, is_primary=True, max_length=PK_MAX_BYTES)
    schema.add_field(SEQ, DataType.INT64)
    schema.add_field(VECTOR, DataType.FLOAT_VECTOR, dim=dim)
    schema.add_field(METADATA, DataType.JSON, nullable=True)
    return schema


def build_index_params(client: Any, settings: Settings) -> Any:
    """HNSW on the vector field with the space's metric."""
    params = client.prepare_index_params()
    params.add_index(
        field_name=VECTOR,
        index_name=VECTOR,
        index_type="HNSW",
        metric_type=METRICS[settings.space],
        params={"M": settings.M, "efConstruction": settings.ef_construction},
    )
    return params


def read_layout(description: Mapping[str, Any], where: str) -> int:
    """The vector dim of a described collection; BackendError unless umr's layout."""
    fields = {f["name"]: f for f in description.get("fields", [])}
    want = {PK: "VARCHAR", SEQ: "INT64", VECTOR: "FLOAT_VECTOR", METADATA: "JSON"}
    for name, kind in want.items():
        got = getattr(fields.get(name, {}).get("type"), "name", None)
        if got != kind:
            raise BackendError(
                f"{where}: not a umr collection (field {name!r} should be {kind}, is {got})"
            )
    return int(fields[VECTOR]["params"]["dim"])


def read_settings(
    properties: Mapping[str, Any], index: Mapping[str, Any], where: str, default_ef: int
) -> Settings:
    """Settings from the ``umr.settings`` property, else from the index description."""
    raw = properties.get(SETTINGS_KEY)
    if raw:
        try:
            return Settings(**json.loads(raw))
        except (TypeError, ValueError) as exc:
            raise BackendError(f"{where}: unreadable {SETTINGS_KEY} property ({exc})") from None
    metric = str(index.get("metric_type", "")).upper()
    space = {v: k for k, v in METRICS.items()}.get(metric)
    if space is None:
        raise BackendError(f"{where}: vector index metric {metric!r} is not one umr uses")
    M = int(index.get("M", 16))
    return Settings(space, M, int(index.get("efConstruction", 200)), default_ef)
