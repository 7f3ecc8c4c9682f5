"""Reading pooling mode and max_seq_length from tiny fake model directories (fast, no torch)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from umr.export.source import read_source

from umr.errors import ExportError


def _model_dir(tmp_path: Path, files: dict[str, object] | None = None) -> Path:
    """A fake model dir: config.json, weights, tokenizer.json, plus ``files`` (name -> JSON)."""
    root = tmp_path / "model"
    root.mkdir(parents=True)
    cfg = {"model_type": "bert", "hidden_size": 32, "max_position_embeddings": 512}
    (root / "config.json").write_text(json.dumps(cfg))
    (root / "model.safetensors").write_bytes(b"not read here")
    (root / "tokenizer.json").write_text("{}")
    for name, content in (files or {}).items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(content))
    return root


def _st_modules(pool_dir: str = "1_Pooling") -> list[dict]:
    return [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": pool_dir, "type": "sentence_transformers.models.Pooling"},
    ]


@pytest.mark.parametrize(
    ("key", "mode"),
    [
        ("pooling_mode_mean_tokens", "mean"),
        ("pooling_mode_cls_token", "cls"),
        ("pooling_mode_lasttoken", "last"),
    ],
)
def test_pooling_mode_from_the_module_folder(tmp_path, key, mode):
    root = _model_dir(
        tmp_path,
        {"modules.json": _st_modules("2_Pool"), "2_Pool/config.json": {key: True}},
    )
    assert read_source(root).pooling == mode


def test_st_max_seq_length_wins_over_the_tokenizer(tmp_path):
    root = _model_dir(
        tmp_path,
        {
            "sentence_bert_config.json": {"max_seq_length": 256},
            "tokenizer_config.json": {"model_max_length": 512},
        },
    )
    src = read_source(root)
    assert (src.max_seq_length, src.pooling, src.dim) == (256, "mean", 32)


def test_plain_hf_dir_caps_tokenizer_limit_by_positions(tmp_path):
    root = _model_dir(tmp_path, {"tokenizer_config.json": {"model_max_length": 10**30}})
    src = read_source(root)
    assert (src.max_seq_length, src.pooling, src.is_sentence_transformers) == (512, "mean", False)


def test_two_pooling_modes_is_an_error_naming_them(tmp_path):
    both = {"pooling_mode_mean_tokens": True, "pooling_mode_cls_token": True}
    root = _model_dir(tmp_path, {"modules.json": _st_modules(), "1_Pooling/config.json": both})
    with pytest.raises(ExportError, match="pooling_mode_cls_token"):
        read_source(root)


def test_bad_sources_say_what_is_missing(tmp_path):
    with pytest.raises(ExportError, match="not a directory"):
        read_source(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ExportError, match=r"no config\.json"):
        read_source(tmp_path / "empty")
    root = _model_dir(tmp_path)
    (root / "model.safetensors").unlink()
    with pytest.raises(ExportError, match="no weights"):
        read_source(root)


def test_export_refuses_non_empty_output_without_overwrite(tmp_path):
    from umr.export import export_bundle

    out = tmp_path / "bundle"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(ExportError, match="not empty"):
        export_bundle(out, _model_dir(tmp_path), progress=False)
    with pytest.raises(ExportError, match="'bf16'"):
        export_bundle(tmp_path / "new", _model_dir(tmp_path / "x"), variants=("bf16",))
    assert (out / "keep.txt").read_text() == "x"
