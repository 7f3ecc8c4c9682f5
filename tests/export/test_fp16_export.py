"""Export with the fp16 variant (tiny random BERT; torch, optimum), then serve it on the CPU."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import onnx
import pytest

from umr.bundle import read_manifest, verify_files


@pytest.fixture(autouse=True)
def _export_extra() -> None:
    for name in ("torch", "transformers", "optimum", "sentence_transformers"):
        pytest.importorskip(name, reason=f"{name} (pip install 'umr[export]') is not installed")


def _tiny_bert(root: Path, max_seq_length: int) -> Path:
    """The tiny BERT source directory of test_export_tiny_bert.py (one definition)."""
    path = Path(__file__).with_name("test_export_tiny_bert.py")
    spec = importlib.util.spec_from_file_location("_umr_tiny_bert_source", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module._tiny_bert(root, max_seq_length)


@pytest.mark.slow
def test_fp16_variant_is_exported_gated_recorded_and_served(tmp_path: Path) -> None:
    from umr.export import export_bundle
    from umr.runtime.embedder import Embedder

    src = _tiny_bert(tmp_path / "src", max_seq_length=16)
    out = tmp_path / "bundle"
    manifest = export_bundle(out, src, variants=("fp32", "fp16"), progress=False)

    verify_files(out, read_manifest(out))
    assert list(manifest.variants) == ["fp32", "fp16"]
    fp16 = manifest.variants["fp16"]
    assert (fp16.file, fp16.dtype) == ("model.fp16.onnx", "float16")
    gated = fp16.parity_against("fp32")
    assert gated is not None and gated.gate == 0.999 and gated.passed
    assert gated.min_cosine >= 0.999
    assert fp16.parity_against("sentence-transformers") is not None
    assert fp16.details["io_dtype"] == "float32" and "parity_method" in fp16.details
    assert fp16.details["kept_fp32_ops"] == ["LayerNormalization"]
    assert manifest.input_dims["input_ids"] == ("batch_size", "sequence_length")

    graph = onnx.load(str(out / fp16.file))
    onnx.checker.check_model(graph, full_check=True)
    assert {t.data_type for t in graph.graph.initializer if t.dims} >= {onnx.TensorProto.FLOAT16}

    texts = ["the cat sat on the mat", "a dog ran", "red", "the big blue house " * 12]
    want = Embedder.load(out, variant="fp32", threads=1).embed_text(texts)
    got = Embedder.load(out, variant="fp16", threads=1).embed_text(texts)
    assert got.dtype == np.float32
    assert float(np.min(np.sum(got * want, axis=1))) >= 0.999
