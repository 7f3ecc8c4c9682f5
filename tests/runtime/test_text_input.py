"""Validation, tokenization and batching of text input, on the tiny bundle's tokenizer."""

from __future__ import annotations

import numpy as np
import pytest
from umr.runtime.text_input import TextTokenizer, validate_instruction, validate_texts

from umr.errors import BundleError, InputTypeError, InputValueError


def make(tiny_bundle, inputs=None) -> TextTokenizer:
    names = tiny_bundle.inputs if inputs is None else inputs
    return TextTokenizer.from_file(tiny_bundle.path / "tokenizer.json", tiny_bundle.max_len, names)


@pytest.mark.parametrize("bad", ["a text", b"bytes", bytearray(b"x")])
def test_bare_str_or_bytes_is_refused(bad) -> None:
    with pytest.raises(InputTypeError, match="list of str"):
        validate_texts(bad)


def test_non_iterable_is_refused() -> None:
    with pytest.raises(InputTypeError, match="int"):
        validate_texts(3)


@pytest.mark.parametrize("bad", [None, 1, b"b", ["nested"]])
def test_non_str_item_names_index_and_type(bad) -> None:
    with pytest.raises(InputTypeError) as err:
        validate_texts(["ok", "fine", bad])
    assert "texts[2]" in str(err.value) and type(bad).__name__ in str(err.value)


def test_lone_surrogate_names_index() -> None:
    with pytest.raises(InputValueError, match=r"texts\[1\]"):
        validate_texts(["ok", "bad \ud800 here", "fine"])


def test_tuple_and_generator_are_accepted() -> None:
    assert validate_texts(("a", "b")) == ["a", "b"]
    assert validate_texts(t for t in ["x"]) == ["x"]


def test_instruction_validation() -> None:
    assert validate_instruction(None) is None
    with pytest.raises(InputTypeError, match="instruction"):
        validate_instruction(b"query:")
    with pytest.raises(InputValueError, match="instruction"):
        validate_instruction("\udfff")


def test_unsupported_graph_inputs_are_refused(tiny_bundle) -> None:
    with pytest.raises(BundleError, match="pixel_values"):
        make(tiny_bundle, ("input_ids", "pixel_values"))


def test_tokenizer_padding_is_switched_off(tiny_bundle) -> None:
    ids, k = make(tiny_bundle).encode(["a", "the python list"])
    assert k == 0
    assert [len(r) for r in ids] == [3, 5]  # [CLS] .. [SEP], no pad to the longest


def test_batches_sorted_padded_and_cover_every_row(tiny_bundle) -> None:
    texts = ["a", "the python list and text", "", "a b c d e f g h i j k l m n o p q r"]
    batches = list(make(tiny_bundle).batches(texts, batch_size=2))
    rows = np.concatenate([b.rows for b in batches])
    assert sorted(rows.tolist()) == [0, 1, 2, 3]
    assert rows.tolist()[:2] == [3, 1]  # longest first
    first = batches[0].feeds
    assert set(first) == set(tiny_bundle.inputs)
    assert all(a.dtype == np.int64 for a in first.values())
    assert first["input_ids"].shape == (2, tiny_bundle.max_len)  # the long one is truncated
    assert first["attention_mask"][1].sum() == 7
    np.testing.assert_array_equal(first["pool_mask"], first["attention_mask"])
    assert not first["token_type_ids"].any()


def test_only_listed_inputs_are_fed(tiny_bundle) -> None:
    (batch,) = make(tiny_bundle, ("input_ids", "attention_mask")).batches(["a b"])
    assert set(batch.feeds) == {"input_ids", "attention_mask"}


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_bad_batch_size(tiny_bundle, bad) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        list(make(tiny_bundle).batches(["a"], batch_size=bad))


def test_instruction_goes_after_cls_and_is_not_pooled(tiny_bundle) -> None:
    tok = make(tiny_bundle)
    long = " ".join(["python"] * 40)
    (batch,) = tok.batches(["a", long], instruction="query:", batch_size=2)
    ids, pool, att = (batch.feeds[n] for n in ("input_ids", "pool_mask", "attention_mask"))
    vocab = tiny_bundle.tokenizer().get_vocab()
    instr = [vocab["query"], vocab[":"]]
    assert ids.shape[1] == tiny_bundle.max_len  # total stays within max_seq_length
    for r in range(2):
        assert ids[r, 0] == vocab["[CLS]"] and ids[r, 1:3].tolist() == instr
        assert pool[r, 1:3].tolist() == [0, 0] and pool[r, 0] == 1
    short, long_row = (
        int(np.flatnonzero(batch.rows == 0)[0]),
        int(np.flatnonzero(batch.rows == 1)[0]),
    )
    assert ids[short, 3:5].tolist() == [vocab["a"], vocab["[SEP]"]]
    assert att[short].sum() == 5
    assert ids[long_row, -1] == vocab["[SEP]"] and att[long_row].all()
    assert att.sum() == pool.sum() + 4


def test_instruction_too_long_is_refused(tiny_bundle) -> None:
    with pytest.raises(InputValueError, match="instruction"):
        make(tiny_bundle).encode(["a"], " ".join(["the"] * tiny_bundle.max_len))


def test_token_budget_bounds_padded_tokens(tiny_bundle) -> None:
    texts = ["a " * n for n in (14, 1, 3, 9, 2, 0, 5, 7, 1)]
    batches = list(make(tiny_bundle).batches(texts, batch_size=4, max_tokens=12))
    rows = np.concatenate([b.rows for b in batches])
    assert sorted(rows.tolist()) == list(range(len(texts)))
    for b in batches:
        n, width = b.feeds["input_ids"].shape
        assert n <= 4
        assert n * width <= 12 or n == 1  # a text longer than the budget still runs, alone
    shapes = [b.feeds["input_ids"].shape for b in batches]
    assert shapes == [(1, 16), (1, 11), (1, 9), (1, 7), (2, 5), (3, 3)]
    capped = make(tiny_bundle).batches(["a"] * 5, batch_size=2, max_tokens=1000)
    assert [len(b.rows) for b in capped] == [2, 2, 1]  # batch_size still caps the rows
