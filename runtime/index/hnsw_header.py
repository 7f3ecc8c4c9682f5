"""Reads and checks an hnswlib 0.8 index file before hnswlib ever sees it.

hnswlib trusts its file: a wrong dim answers garbage, a corrupted header can abort the
process and a bad entry point segfaults on the first query. The layout (from
``HierarchicalNSW::saveIndex``, little-endian, no padding) is a 96-byte header::

    size_t offsetLevel0, max_elements, cur_element_count, size_data_per_element,
           label_offset, offsetData
    int    maxlevel;  unsigned int enterpoint_node
    size_t maxM, maxM0, M;  double mult;  size_t ef_construction

then ``count * size_data_per_element`` bytes of level-0 records (link count as uint16,
a flags byte whose bit 0 marks deletion, a spare byte, maxM0 uint32 neighbour ids, the
vector, the uint64 label), then per element a uint32 byte size and that many bytes of
upper-level links (``level * (maxM * 4 + 4)``).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from umr.errors import IndexCorruptError

_HEADER = struct.Struct("<6QiI3QdQ")
HEADER_SIZE = _HEADER.size  # 96
_MAX_LEVEL = 64  # mult = 1/ln(M) makes level > 64 astronomically unlikely for any M >= 2


@dataclass(frozen=True)
class HnswHeader:
    """The fixed header of an hnswlib index file."""

    offset_level0: int
    max_elements: int
    count: int
    size_data_per_element: int
    label_offset: int
    offset_data: int
    maxlevel: int
    enterpoint: int
    maxM: int
    maxM0: int
    M: int
    mult: float
    ef_construction: int

    @property
    def dim(self) -> int:
        """Vector dimension implied by the record layout (float32 data)."""
        return (self.label_offset - self.offset_data) // 4


@dataclass(frozen=True)
class Expected:
    """What the manifest says the file must hold."""

    dim: int
    M: int
    ef_construction: int
    labels: int
    capacity: int
    deleted: frozenset[int]


def check_index_file(path: Path, want: Expected) -> HnswHeader:
    """Parse ``path`` and cross-check it against ``want``; IndexCorruptError on mismatch."""
    data = path.read_bytes()
    if len(data) < HEADER_SIZE:
        raise IndexCorruptError(f"{path}: {len(data)} bytes, shorter than the hnswlib header")
    head = HnswHeader(*_HEADER.unpack_from(data, 0))
    _check_header(path, head, want)
    level0_end = HEADER_SIZE + head.count * head.size_data_per_element
    if len(data) < level0_end:
        raise IndexCorruptError(f"{path}: truncated inside the level-0 records")
    record = np.dtype(
        {
            "names": ["count", "flags", "links", "vector", "label"],
            "formats": ["<u2", "u1", ("<u4", head.maxM0), ("<f4", head.dim), "<u8"],
            "offsets": [0, 2, 4, head.offset_data, head.label_offset],
            "itemsize": head.size_data_per_element,
        }
    )
    records = np.frombuffer(data, record, head.count, HEADER_SIZE)  # views, no copies
    _check_level0(path, head, records, want)
    levels = _check_upper_levels(path, head, data, level0_end)
    if head.count and levels[head.enterpoint] != head.maxlevel:
        raise IndexCorruptError(
            f"{path}: entry point {head.enterpoint} has level {levels[head.enterpoint]}, "
            f"header maxlevel is {head.maxlevel}"
        )
    return head


def _check_header(path: Path, h: HnswHeader, want: Expected) -> None:
    links0 = h.maxM0 * 4 + 4
    expect = {
        "offsetLevel0": (h.offset_level0, 0),
        "dim (label_offset - offsetData) / 4": (h.dim, want.dim),
        "M": (h.M, want.M),
        "maxM": (h.maxM, want.M),
        "maxM0": (h.maxM0, 2 * want.M),
        "ef_construction": (h.ef_construction, want.ef_construction),
        "cur_element_count": (h.count, want.labels),
        "max_elements": (h.max_elements, want.capacity),
        "offsetData": (h.offset_data, links0),
        "size_data_per_element": (h.size_data_per_element, links0 + 4 * want.dim + 8),
    }
    for name, (got, expected) in expect.items():
        if got != expected:
            raise IndexCorruptError(f"{path}: header {name} is {got}, expected {expected}")
    if (h.label_offset - h.offset_data) % 4:
        raise IndexCorruptError(f"{path}: header label_offset/offsetData are not float32-aligned")
    if not math.isclose(h.mult, 1.0 / math.log(max(h.M, 2)), rel_tol=1e-9):
        raise IndexCorruptError(f"{path}: header mult {h.mult} is not 1/ln(M) for M={h.M}")
    if h.count and not 0 <= h.maxlevel <= _MAX_LEVEL:
        raise IndexCorruptError(f"{path}: header maxlevel {h.maxlevel} is not in 0..{_MAX_LEVEL}")
    if h.count and h.enterpoint >= h.count:
        raise IndexCorruptError(f"{path}: entry point {h.enterpoint} >= element count {h.count}")


def _check_level0(path: Path, h: HnswHeader, records: np.ndarray, want: Expected) -> None:
    n = h.count
    link_count = records["count"]
    if n and int(link_count.max()) > h.maxM0:
        bad = int(np.argmax(link_count))
        raise IndexCorruptError(f"{path}: element {bad} has {link_count[bad]} level-0 links")
    used = np.arange(h.maxM0)[None, :] < link_count[:, None]
    if n and bool((records["links"][used] >= n).any()):
        raise IndexCorruptError(f"{path}: a level-0 link points past element {n - 1}")
    if not np.isfinite(records["vector"]).all():
        raise IndexCorruptError(f"{path}: a stored vector holds NaN or inf")
    labels = records["label"]
    if not np.array_equal(np.sort(labels), np.arange(n, dtype=np.uint64)):
        raise IndexCorruptError(f"{path}: labels are not exactly 0..{n - 1}, one each")
    flagged = np.flatnonzero(records["flags"] & 1)
    if set(labels[flagged].tolist()) != want.deleted:
        raise IndexCorruptError(f"{path}: deleted marks differ from the manifest's deleted list")


def _check_upper_levels(path: Path, h: HnswHeader, data: bytes, pos: int) -> list[int]:
    per_level = h.maxM * 4 + 4
    levels = [0] * h.count
    for i in range(h.count):
        if pos + 4 > len(data):
            raise IndexCorruptError(f"{path}: truncated at the link lists of element {i}")
        (size,) = struct.unpack_from("<I", data, pos)
        pos += 4
        if size % per_level or size // per_level > h.maxlevel or pos + size > len(data):
            raise IndexCorruptError(f"{path}: element {i} has a bad link-list size {size}")
        if size:
            levels[i] = size // per_level
            _check_links(path, h, data, pos, levels[i], i)
            pos += size
    if pos != len(data):
        raise IndexCorruptError(f"{path}: {len(data) - pos} unexpected bytes after the links")
    return levels


def _check_links(path: Path, h: HnswHeader, data: bytes, pos: int, nlev: int, i: int) -> None:
    block = np.frombuffer(data, "<u4", nlev * (h.maxM + 1), pos).reshape(nlev, h.maxM + 1)
    counts = block[:, 0] & 0xFFFF
    used = np.arange(h.maxM)[None, :] < counts[:, None]
    if (counts > h.maxM).any() or (block[:, 1:][used] >= h.count).any():
        raise IndexCorruptError(f"{path}: element {i} has an upper-level link out of range")
