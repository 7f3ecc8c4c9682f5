"""Which candidates a training query may be pushed away from (false-negative masks)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from umr.training.batches import BatchSampler
from umr.training.data.records import Record, Side
from umr.training.text_bank import TextBank


def _rec(task: str, query: Side, positive: Side, identity: str) -> Record:
    return Record(task=task, query=query, positive=positive, meta={"identity": identity})


def _img(name: str) -> Path:
    return Path(f"/x/{name}.png")


def _records() -> list[Record]:
    return [
        # image -> image of the same emoji in another style
        _rec("qi->ci", Side(image=_img("a-tw")), Side(image=_img("a-go")), "a"),
        # image -> name, same identity: the name must not be a negative of row 0
        _rec("qi->ct", Side(image=_img("a-tw")), Side(text="grinning face"), "a"),
        # another identity's image: a true negative for row 0
        _rec("qi->ci", Side(image=_img("b-tw")), Side(image=_img("b-go")), "b"),
        # a skin-tone variant of "a": same identity, same modality as row 0's answer
        _rec(
            "(qi,qt)->ci",
            Side(image=_img("a-tw"), text="dark skin tone"),
            Side(image=_img("a-dark")),
            "a",
        ),
    ]


def test_same_identity_other_modality_is_masked_same_modality_is_not() -> None:
    recs = _records()
    batch = BatchSampler(recs)._assemble(recs, [r.positive for r in recs], [False] * 4)
    fn = batch.false_negatives
    assert fn[0, 1]  # its own name, for an image->image query: neither positive nor negative
    assert not fn[0, 2]  # another emoji's image stays a negative
    assert not fn[0, 3]  # the same emoji's other variant is a hard negative, kept
    assert fn[1, 0]  # an image->name query: its own emoji's image is not pushed away
    assert not fn[1, 2]  # ...another emoji's image is
    assert not fn[3, 0]  # the base emoji in the other style is a negative for the variant
    assert batch.text_answers == [False, True, False, False]
    # Only the image -> name row pairs a text-only side with an image-only one.
    assert batch.text_image_rows().tolist() == [False, True, False, False]


def test_text_bank_is_masked_for_queries_whose_answer_is_not_text() -> None:
    bank = TextBank()
    keys = [("grinning face", None), ("cat", None)]
    bank.set_bank(keys, torch.zeros((2, 4)))
    mask = bank.mask([{("grinning face", None)}, {(None, "/x/a-go.png")}], [True, False])
    assert mask.tolist() == [[True, False], [True, True]]


def test_sampled_batches_carry_one_flag_per_query() -> None:
    batch = BatchSampler(_records()).sample(
        np.random.default_rng(0), {"qi->ci": 1.0, "qi->ct": 1.0}, size=6, hard=0
    )
    assert len(batch.text_answers) == 6
    for task, text in zip(batch.tasks, batch.text_answers, strict=True):
        assert text == (task == "qi->ct")


def test_hard_negatives_draw_from_mined_and_record_negatives_alike() -> None:
    near = Side(image=_img("a-light"))
    rec = Record(
        task="(qi,qt)->ci",
        query=Side(image=_img("a-tw"), text="dark skin tone"),
        positive=Side(image=_img("a-dark")),
        negatives=(near,),
        meta={"identity": "a"},
    )
    sampler = BatchSampler([rec])
    mined = Side(image=_img("b-dark"))
    sampler.mined[0] = [mined, near]  # mining found the record's own near miss too
    seen = {
        tuple(
            c.key
            for c in sampler.sample(np.random.default_rng(s), {rec.task: 1.0}, 2, 1).candidates[2:]
        )
        for s in range(20)
    }
    assert {(mined.key,), (near.key,)} >= {k[:1] for k in seen}
    assert any(near.key in k for k in seen) and any(mined.key in k for k in seen)
    many = sampler.sample(np.random.default_rng(0), {rec.task: 1.0}, 1, 5).candidates[1:]
    assert sorted(c.key for c in many) == sorted([mined.key, near.key])  # no duplicates
