"""End-to-end export of a tiny random BERT made on the fly (torch, optimum; ~20 s)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from umr.kernels.reference import pool

from umr.bundle import read_manifest, verify_files


@pytest.fixture(autouse=True)
def _export_extra() -> None:
    """Skip (with the reason) where the export extra is missing; imported lazily because
    torch takes seconds to import and these tests are deselected in fast runs."""
    for name in ("torch", "transformers", "optimum", "sentence_transformers"):
        pytest.importorskip(name, reason=f"{name} (pip install 'umr[export]') is not installed")


WORDS = ["the", "a", "cat", "dog", "sat", "on", "mat", "ran", "fast", "slow", "red"]
TEXTS = ["the cat sat on the mat", "a dog ran", "red", "the big blue house " * 12]


def _tiny_bert(root: Path, max_seq_length: int) -> Path:
    """A random 2-layer BERT (hidden 32) + WordPiece tokenizer, as a sentence-transformers dir."""
    import torch
    import transformers
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    tok = Tokenizer(models.WordPiece({w: i for i, w in enumerate(vocab)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 2), ("[SEP]", 3)],
    )
    root.mkdir(parents=True)
    tok.save(str(root / "tokenizer.json"))
    (root / "vocab.txt").write_text("\n".join(vocab) + "\n")
    config = transformers.BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    torch.manual_seed(0)
    transformers.BertModel(config).eval().save_pretrained(root)
    (root / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "BertTokenizer",
                "do_lower_case": True,
                "model_max_length": 128,
                "unk_token": "[UNK]",
                "sep_token": "[SEP]",
                "pad_token": "[PAD]",
                "cls_token": "[CLS]",
                "mask_token": "[MASK]",
            }
        )
    )
    (root / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": max_seq_length}))
    (root / "modules.json").write_text(
        json.dumps(
            [
                {
                    "idx": 0,
                    "name": "0",
                    "path": "",
                    "type": "sentence_transformers.models.Transformer",
                },
                {
                    "idx": 1,
                    "name": "1",
                    "path": "1_Pooling",
                    "type": "sentence_transformers.models.Pooling",
                },
                {
                    "idx": 2,
                    "name": "2",
                    "path": "2_Normalize",
                    "type": "sentence_transformers.models.Normalize",
                },
            ]
        )
    )
    (root / "1_Pooling").mkdir()
    (root / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": 32, "pooling_mode_mean_tokens": True})
    )
    return root


def _torch_reference(src: Path, texts: list[str], max_len: int) -> np.ndarray:
    """Mean-pooled, L2-normalised last_hidden_state straight from transformers."""
    import torch
    import transformers
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(src / "tokenizer.json"))
    tok.enable_truncation(max_length=max_len)
    tok.enable_padding()
    enc = tok.encode_batch(texts)
    ids = torch.tensor([e.ids for e in enc])
    mask = torch.tensor([e.attention_mask for e in enc])
    model = transformers.BertModel.from_pretrained(src).eval()
    with torch.no_grad():
        hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state.numpy()
    return pool(hidden, mask.numpy(), mask.numpy(), "mean", normalize=True)


@pytest.mark.slow
def test_tiny_bert_exports_a_verified_bundle(tmp_path):
    import onnx
    import onnxruntime as ort
    from umr.export import export_bundle
    from umr.export.parity import compare, onnx_embed

    src = _tiny_bert(tmp_path / "src", max_seq_length=16)
    out = tmp_path / "bundle"
    manifest = export_bundle(out, src, int8_gate=0.95, progress=False)

    assert read_manifest(out) == manifest
    verify_files(out, manifest)
    assert set(manifest.files) == {p.name for p in out.iterdir()} - {"umr.json"}
    assert (manifest.dim, manifest.max_seq_length, manifest.pooling) == (32, 16, "mean")
    assert manifest.inputs == ("input_ids", "attention_mask", "token_type_ids", "pool_mask")
    assert manifest.variants["fp32"].parity_against("sentence-transformers").min_cosine >= 0.9999
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".bundle")]  # no staging left

    tok = json.loads((out / "tokenizer.json").read_text())
    assert tok["truncation"]["max_length"] == 16 and tok["padding"] is None
    for variant in manifest.variants.values():
        graph = onnx.load(str(out / variant.file))
        assert [o.name for o in graph.graph.output] == ["sentence_embedding"]
    sess = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    got = onnx_embed(sess, out / "tokenizer.json", TEXTS)
    assert got.shape == (len(TEXTS), 32)
    assert compare(got, _torch_reference(src, TEXTS, 16)).cosines.min() >= 0.9999


@pytest.mark.slow
def test_overwrite_replaces_and_fp32_only_drops_int8(tmp_path):
    from umr.export import export_bundle

    src = _tiny_bert(tmp_path / "src", max_seq_length=8)
    out = tmp_path / "bundle"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    manifest = export_bundle(out, src, variants=("fp32",), overwrite=True, progress=False)
    assert list(manifest.variants) == ["fp32"]
    assert not (out / "stale.txt").exists() and not (out / "model.int8.onnx").exists()
    verify_files(out, read_manifest(out))


@pytest.mark.slow
def test_int8_that_cannot_pass_its_gate_is_left_out_with_a_warning(tmp_path):
    from umr.export import export_bundle

    src = _tiny_bert(tmp_path / "src", max_seq_length=8)
    with pytest.warns(UserWarning, match="int8 variant left out"):
        manifest = export_bundle(tmp_path / "b", src, int8_gate=1.01, progress=False)
    assert list(manifest.variants) == ["fp32"]
    assert not (tmp_path / "b" / "model.int8.onnx").exists()
