"""Embedder on the tiny bundle: loading, verification, input errors, ordering, invariances."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from umr.runtime import Embedder
from umr.runtime.embedder import batch_dependent

from umr.bundle import Variant
from umr.errors import (
    BundleError,
    ChecksumError,
    InputTypeError,
    InputValueError,
    ProviderUnavailableError,
    UnknownVariantError,
)

TEXTS = [
    "the python list",
    "a",
    "",
    "this is a text that is long and will be truncated by the tokenizer for sure",
    "query text on the list",
    "Python!",
    "a b c",
]


def unpadded_ids(tiny_bundle, text: str) -> list[int]:
    tok = tiny_bundle.tokenizer()
    tok.no_padding()
    return tok.encode(text).ids


def test_load_reports_what_it_runs(tiny_bundle) -> None:
    emb = Embedder.load(tiny_bundle.path, threads=1)
    assert (emb.dim, emb.variant, emb.provider, emb.threads) == (8, "fp32", "cpu", 1)
    assert emb.manifest.name == "tiny"
    assert Embedder.load(tiny_bundle.path).threads == len(os.sched_getaffinity(0))


@pytest.mark.parametrize("bad", [0, -2, 1.0, "2"])
def test_bad_threads(tiny_bundle, bad) -> None:
    with pytest.raises(ValueError, match="threads"):
        Embedder.load(tiny_bundle.path, threads=bad)


def test_matches_numpy_reference_in_input_order(tiny_bundle) -> None:
    vecs = Embedder.load(tiny_bundle.path).embed_text(TEXTS, batch_size=3)
    assert vecs.dtype == np.float32 and vecs.shape == (len(TEXTS), 8)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    for text, vec in zip(TEXTS, vecs, strict=True):
        ref = tiny_bundle.reference(unpadded_ids(tiny_bundle, text))
        assert float(vec @ ref) > 0.99999, text


def test_empty_list_gives_zero_rows(tiny_bundle) -> None:
    assert Embedder.load(tiny_bundle.path).embed_text([]).shape == (0, 8)


@pytest.mark.parametrize("bad", ["one text", b"bytes"])
def test_bare_str_or_bytes(tiny_bundle, bad) -> None:
    with pytest.raises(InputTypeError, match="list"):
        Embedder.load(tiny_bundle.path).embed_text(bad)


def test_non_str_item_names_index(tiny_bundle) -> None:
    with pytest.raises(InputTypeError, match=r"texts\[1\].*int"):
        Embedder.load(tiny_bundle.path).embed_text(["ok", 5])


def test_lone_surrogate_names_index(tiny_bundle) -> None:
    with pytest.raises(InputValueError, match=r"texts\[2\]"):
        Embedder.load(tiny_bundle.path).embed_text(["ok", "fine", "x\udc80y"])


def test_bad_batch_size(tiny_bundle) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        Embedder.load(tiny_bundle.path).embed_text(["a"], batch_size=0)
    with pytest.raises(ValueError, match="batch_size"):
        Embedder.load(tiny_bundle.path).embed_text([], batch_size=-1)


def test_overlong_text_equals_its_first_max_len_tokens(tiny_bundle) -> None:
    emb = Embedder.load(tiny_bundle.path)
    words = ("the python list and text is in it for query " * 20).split()
    long = " ".join(words[: 10 * tiny_bundle.max_len])
    head = " ".join(words[: tiny_bundle.max_len - 2])  # each word is one token here
    assert len(unpadded_ids(tiny_bundle, head)) == tiny_bundle.max_len
    a, b = emb.embed_text([long, head])
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_batch_invariance(tiny_bundle) -> None:
    emb = Embedder.load(tiny_bundle.path)
    alone = np.stack([emb.embed_text([t])[0] for t in TEXTS])
    for bs in (1, 2, 3, 32):
        together = emb.embed_text(TEXTS, batch_size=bs)
        assert (alone * together).sum(axis=1).min() >= 0.9999, bs
    shuffled = emb.embed_text(TEXTS[::-1])[::-1]
    assert (alone * shuffled).sum(axis=1).min() >= 0.9999


def test_token_budget_does_not_change_vectors(tiny_bundle) -> None:
    emb = Embedder.load(tiny_bundle.path)
    assert emb.max_batch_tokens is not None  # a budget is on by default
    with_budget = emb.embed_text(TEXTS)
    emb.max_batch_tokens = None
    without = emb.embed_text(TEXTS, batch_size=64)
    emb.max_batch_tokens = 1  # every text alone
    alone = emb.embed_text(TEXTS)
    assert (with_budget * without).sum(axis=1).min() >= 0.9999
    assert (with_budget * alone).sum(axis=1).min() >= 0.9999


@pytest.mark.parametrize(
    ("details", "dependent"),
    [
        ({}, False),
        ({"activations": "uint8, dynamic"}, True),
        ({"activations": "int8, static"}, False),
        ({"activations": "uint8, dynamic", "batch_invariant": True}, False),
        ({"batch_invariant": False}, True),
    ],
)
def test_batch_dependent_variants(details, dependent) -> None:
    assert batch_dependent(Variant("int8", "m.onnx", "int8", details=details)) is dependent


def test_dynamic_int8_runs_one_text_per_call(tiny_bundle) -> None:
    manifest = tiny_bundle.path / "umr.json"
    obj = json.loads(manifest.read_text())
    obj["variants"]["int8"]["details"] = {"activations": "uint8, dynamic"}
    manifest.write_text(json.dumps(obj))
    assert Embedder.load(tiny_bundle.path, variant="int8").max_batch_tokens == 1
    assert Embedder.load(tiny_bundle.path, variant="fp32").max_batch_tokens > 1


def test_instruction_is_excluded_from_the_pool(tiny_bundle) -> None:
    emb = Embedder.load(tiny_bundle.path)
    plain, instructed = (
        emb.embed_text(["the python list"]),
        emb.embed_text(["the python list"], instruction="query:"),
    )
    assert float(plain[0] @ instructed[0]) < 0.9999  # it conditions the text
    ids = unpadded_ids(tiny_bundle, "the python list")
    vocab = tiny_bundle.tokenizer().get_vocab()
    full = [ids[0], vocab["query"], vocab[":"], *ids[1:]]
    pool = [1, 0, 0] + [1] * (len(ids) - 1)
    assert float(instructed[0] @ tiny_bundle.reference(full, pool)) > 0.99999
    pooled_too = tiny_bundle.reference(full)  # what a wrong runtime would produce
    assert float(instructed[0] @ pooled_too) < 0.9999


def test_instruction_keeps_total_within_max_len(tiny_bundle) -> None:
    emb = Embedder.load(tiny_bundle.path)
    long = " ".join(["python"] * 50)
    (vec,) = emb.embed_text([long], instruction="query:")
    vocab = tiny_bundle.tokenizer().get_vocab()
    n = tiny_bundle.max_len
    full = [
        vocab["[CLS]"],
        vocab["query"],
        vocab[":"],
        *[vocab["python"]] * (n - 4),
        vocab["[SEP]"],
    ]
    assert float(vec @ tiny_bundle.reference(full, [1, 0, 0] + [1] * (n - 3))) > 0.99999


def test_instruction_needs_pool_mask_input(tiny_bundle_factory) -> None:
    b = tiny_bundle_factory("nopool", inputs=("input_ids", "attention_mask"))
    emb = Embedder.load(b.path)
    assert emb.embed_text(["a b"]).shape == (1, 8)
    with pytest.raises(InputValueError, match="pool_mask"):
        emb.embed_text(["a b"], instruction="query:")


def test_feeds_only_manifest_inputs(tiny_bundle_factory) -> None:
    b = tiny_bundle_factory("no_tt", inputs=("input_ids", "attention_mask", "pool_mask"))
    (vec,) = Embedder.load(b.path).embed_text(["the list"])
    assert float(vec @ b.reference(unpadded_ids(b, "the list"))) > 0.99999


def test_int8_variant_and_unknown_variant(tiny_bundle) -> None:
    fp32 = Embedder.load(tiny_bundle.path).embed_text(TEXTS)
    int8 = Embedder.load(tiny_bundle.path, variant="int8")
    assert int8.variant == "int8"
    cos = (fp32 * int8.embed_text(TEXTS)).sum(axis=1)
    assert 0.99 < cos.min() < 1.0  # a different graph, close to the first
    with pytest.raises(UnknownVariantError) as err:
        Embedder.load(tiny_bundle.path, variant="fp16")
    assert "fp16" in str(err.value) and "fp32" in str(err.value) and "int8" in str(err.value)


@pytest.mark.parametrize("name", ["model.onnx", "model.int8.onnx", "tokenizer.json"])
def test_tampered_file_is_named(tiny_bundle, name) -> None:
    path = tiny_bundle.path / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match=name.replace(".", r"\.")):
        Embedder.load(tiny_bundle.path)  # int8 tampering counts too: every file is checked


def test_missing_file_is_named(tiny_bundle) -> None:
    (tiny_bundle.path / "model.int8.onnx").unlink()
    with pytest.raises(ChecksumError, match=r"model\.int8\.onnx.*missing"):
        Embedder.load(tiny_bundle.path)


def test_unlisted_tokenizer_is_not_trusted(tiny_bundle) -> None:
    manifest = tiny_bundle.path / "umr.json"
    obj = json.loads(manifest.read_text())
    del obj["files"]["tokenizer.json"]
    manifest.write_text(json.dumps(obj))
    with pytest.raises(ChecksumError, match=r"tokenizer\.json"):
        Embedder.load(tiny_bundle.path)


def test_manifest_inputs_must_match_graph(tiny_bundle) -> None:
    manifest = tiny_bundle.path / "umr.json"
    obj = json.loads(manifest.read_text())
    obj["inputs"] = ["input_ids", "attention_mask"]
    manifest.write_text(json.dumps(obj))
    with pytest.raises(BundleError, match="inputs"):
        Embedder.load(tiny_bundle.path)


def test_manifest_dim_must_match_graph(tiny_bundle) -> None:
    manifest = tiny_bundle.path / "umr.json"
    obj = json.loads(manifest.read_text())
    obj["dim"] = 9
    manifest.write_text(json.dumps(obj))
    with pytest.raises(BundleError, match="dim 8"):
        Embedder.load(tiny_bundle.path)


def test_not_a_bundle(tmp_path) -> None:
    with pytest.raises(BundleError, match=r"umr\.json"):
        Embedder.load(tmp_path)


def test_missing_gpu_provider_is_loud(tiny_bundle) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("CUDA provider is installed here; this checks a CPU-only install")
    with pytest.raises(ProviderUnavailableError, match="CPUExecutionProvider"):
        Embedder.load(tiny_bundle.path, provider="cuda")


def test_auto_provider_reports_the_active_one(tiny_bundle) -> None:
    from umr.runtime.providers import short_name

    emb = Embedder.load(tiny_bundle.path, provider="auto")
    assert emb.provider == short_name(emb._session.get_providers()[0])
    assert emb.provider in ("cpu", "cuda", "tensorrt")


def test_thread_plan_uses_single_threaded_workers_on_cpu_only() -> None:
    from umr.runtime.session import thread_plan

    assert thread_plan("cpu", 2) == (1, 2)
    assert thread_plan("cpu", 1) == (1, 1)
    assert thread_plan("cuda", 4) == (4, 1)
    assert thread_plan("tensorrt", 2) == (2, 1)
    # the fused text+image graph's larger ops take a second intra-op thread, never more
    assert thread_plan("cpu", 2, "fused") == (2, 2)
    assert thread_plan("cpu", 1, "fused") == (1, 1)
    assert thread_plan("cpu", 16, "fused") == (2, 16)
    assert thread_plan("cuda", 4, "fused") == (4, 1)
    assert thread_plan("cpu", 2, "fused", "int8") == (1, 2)  # int8 lost with two
    assert thread_plan("cpu", 2, "fused", "float16") == (2, 2)


def test_parallel_workers_give_exactly_the_serial_vectors(tiny_bundle) -> None:
    texts = [" ".join(["python list text"] * (1 + i % 5)) for i in range(40)]
    serial = Embedder.load(tiny_bundle.path, threads=1)
    parallel = Embedder.load(tiny_bundle.path, threads=3)
    for emb in (serial, parallel):
        emb.max_batch_tokens = 16  # many small batches, so the worker pool really is used
    assert parallel._pool is not None and serial._pool is None
    np.testing.assert_array_equal(parallel.embed_text(texts), serial.embed_text(texts))
