"""``umr eval --sample-identities``: a seeded, per-source sample of whole identities."""

from __future__ import annotations

from pathlib import Path

import pytest
from umr.training.data.records import Record, Side
from umr.training.evaluation.report import sample_identities

from umr.errors import DataError


def _records() -> list[Record]:
    """Two records (name -> image, image -> name) per identity: 6 emoji, 3 icons."""
    out = []
    for source, n in (("emoji", 6), ("icons", 3)):
        for i in range(n):
            name, image = Side(text=f"{source} {i}"), Side(image=Path(f"/x/{source}{i}.png"))
            meta = {"identity": f"{source}:{i}", "source": source}
            out.append(Record("qt->ci", name, image, meta=meta))
            out.append(Record("qi->ct", image, name, meta=meta))
    return out


def test_draws_whole_identities_per_source_with_a_fixed_seed() -> None:
    recs = _records()
    got = sample_identities(recs, 2)
    idents = {r.meta["identity"] for r in got}
    assert sum(i.startswith("emoji:") for i in idents) == 2
    assert sum(i.startswith("icons:") for i in idents) == 2
    assert len(got) == 2 * len(idents)  # both records of each drawn identity
    assert sample_identities(recs, 2) == got  # the same draw every time
    assert len(sample_identities(recs, 100)) == len(recs)  # a source smaller than N: all of it


def test_refuses_a_bad_count_and_records_without_identity() -> None:
    with pytest.raises(DataError, match=r"--sample-identities\) must be >= 1, got 0"):
        sample_identities(_records(), 0)
    bare = [Record("qt->ci", Side(text="a"), Side(image=Path("/x/a.png")), meta={})]
    with pytest.raises(DataError, match=r"record 0 \(qt->ci\) has no meta\.identity"):
        sample_identities(bare, 1)
