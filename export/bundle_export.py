"""``export_bundle``: source model directory -> verified umr bundle directory."""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from umr.export.source import SourceModel, default_model_dir, read_source
from umr.export.staging import (
    Steps,
    check_target,
    file_digests,
    package_versions,
    publish,
    staging_dir,
)

import umr
from umr.atomic import atomic_write_json
from umr.bundle import MANIFEST_NAME, BundleManifest, Parity, Variant, sha256_file
from umr.errors import ExportError

FP32_FILE, INT8_FILE = "model.onnx", "model.int8.onnx"
FP32_GATE = 0.9999
KNOWN_VARIANTS = ("fp32", "int8", "fp16")
DEFAULT_VARIANTS = ("fp32", "int8")
REFERENCE = "sentence-transformers"
_VERSIONED = (
    "torch",
    "transformers",
    "optimum",
    "optimum-onnx",
    "onnx",
    "onnxruntime",
    "sentence-transformers",
    "tokenizers",
)


@dataclass(frozen=True)
class _Run:
    """State shared by the steps of one export."""

    src: SourceModel
    stage: Path
    work: Path
    texts: tuple[str, ...]
    steps: Steps


def export_bundle(
    out_dir: str | os.PathLike[str],
    source: str | os.PathLike[str] | None = None,
    *,
    variants: Sequence[str] = DEFAULT_VARIANTS,
    int8_gate: float = 0.99,
    fp16_gate: float = 0.999,
    tensorrt: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> BundleManifest:
    """Export ``source`` (default: :func:`default_model_dir`) to a bundle at ``out_dir``.

    The transformer is exported with Optimum, umr's pooling + L2 subgraph is appended (the
    graph's only output is ``sentence_embedding``), and each variant is checked against
    sentence-transformers on :data:`umr.export.sentences.PARITY_TEXTS`: fp32 must reach a min
    cosine of 0.9999 (else ParityError); int8 must reach ``int8_gate`` against fp32, after a
    rescue that keeps sensitive layers in fp32, else it is left out with a warning; fp16
    (fp16 compute, fp32 inputs/outputs) likewise against ``fp16_gate``. ``tensorrt`` adds
    a TensorRT engine of the fp16 variant, built and checked on this machine's GPU
    (``ProviderUnavailableError`` before anything is exported if it has none). The
    bundle is built beside ``out_dir`` and renamed into place only when complete.
    """
    from umr.export.sentences import PARITY_TEXTS

    out = Path(out_dir)
    wanted = _check_variants((*variants, "fp16") if tensorrt else variants)
    check_target(out, overwrite)
    if tensorrt:
        from umr.export.tensorrt_engine import require_engine_build

        require_engine_build()  # fail before a minute of export, not after
    src = read_source(default_model_dir() if source is None else source)
    steps = Steps(total=3 + ("int8" in wanted) + ("fp16" in wanted) + tensorrt, enabled=progress)
    with tempfile.TemporaryDirectory(prefix="umr-export-") as work, staging_dir(out) as stage:
        run = _Run(src, stage, Path(work), tuple(PARITY_TEXTS), steps)
        inputs, fp32, ref, fp32_emb = _export_fp32(run)
        dims = _input_dims(stage)
        built = {"fp32": fp32}
        if "int8" in wanted:
            int8 = _export_int8(run, fp32_emb, ref, int8_gate)
            if int8 is not None:
                built["int8"] = int8
        if "fp16" in wanted:
            fp16 = _export_fp16(run, fp32_emb, ref, fp16_gate)
            if tensorrt:
                fp16 = _export_engine(run, inputs, dims, fp16, fp32_emb)
            if fp16 is not None:
                built["fp16"] = fp16
        if "fp32" not in wanted:
            del built["fp32"]
            (stage / FP32_FILE).unlink()
        if not built:
            raise ExportError(f"no variant passed its parity gate; asked for {list(wanted)}")
        steps(f"write {MANIFEST_NAME}")
        manifest = _manifest(src, inputs, built, file_digests(stage), dims)
        atomic_write_json(stage / MANIFEST_NAME, manifest.to_json())
        publish(stage, out)
    steps.say(f"done: {out} ({', '.join(built)})")
    return manifest


def _check_variants(variants: Sequence[str]) -> tuple[str, ...]:
    wanted = tuple(dict.fromkeys(variants))
    for v in wanted:
        if v not in KNOWN_VARIANTS:
            raise ExportError(f"variant {v!r} is not one of {KNOWN_VARIANTS}")
    if not wanted:
        raise ExportError(f"variants is empty; choose from {KNOWN_VARIANTS}")
    return wanted


def _export_fp32(run: _Run) -> tuple[tuple[str, ...], Variant, np.ndarray, np.ndarray]:
    """Export + pooling + tokenizer + fp32 parity; (inputs, variant, reference, fp32 vectors)."""
    from umr.export.onnx_graph import build_fp32_graph, export_transformer
    from umr.export.parity import compare, onnx_embed, onnx_session, reference_embed, require
    from umr.export.tokenizer_files import TOKENIZER_FILE, write_tokenizer_files

    run.steps(
        f"export {run.src.name} with optimum (pooling {run.src.pooling}, "
        f"max_seq_length {run.src.max_seq_length})"
    )
    transformer = export_transformer(run.src, run.work)
    inputs = build_fp32_graph(transformer, run.stage / FP32_FILE, run.src.pooling)
    write_tokenizer_files(run.src.path, run.stage, run.src.max_seq_length)
    run.steps(f"fp32 parity vs {REFERENCE} on {len(run.texts)} texts")
    ref = reference_embed(run.src.path, run.texts, run.src.max_seq_length)
    emb = onnx_embed(onnx_session(run.stage / FP32_FILE), run.stage / TOKENIZER_FILE, run.texts)
    comp = compare(emb, ref)
    require(comp, FP32_GATE, run.texts, f"fp32 graph vs {REFERENCE}")
    run.steps.say(f"fp32 min cosine {comp.cosines.min():.6f}")
    details = {
        "graph": "plain onnx (no com.microsoft ops)",
        "pooling_node": "onnx function",
        "batch_invariant": True,
    }
    variant = Variant("fp32", FP32_FILE, "float32", (comp.parity(REFERENCE, FP32_GATE),), details)
    return inputs, variant, ref, emb


def _export_int8(run: _Run, fp32: np.ndarray, ref: np.ndarray, gate: float) -> Variant | None:
    """Smooth, quantise, check against fp32, rescue if needed; None (+ warning) if it fails."""
    from umr.export.parity import compare, feed_batches, onnx_embed, onnx_session
    from umr.export.quantize import QuantConfig, quantize, rescue
    from umr.export.smooth import SMOOTH_ALPHA, calibration_texts, smooth
    from umr.export.tokenizer_files import TOKENIZER_FILE

    run.steps(f"smooth + quantize int8, check vs fp32 (gate {gate})")
    tok, out_path = run.stage / TOKENIZER_FILE, run.stage / INT8_FILE
    names = [*_graph_inputs(run.stage / FP32_FILE)]
    cal = calibration_texts()
    src_path = run.work / "smoothed.onnx"
    smooth(run.stage / FP32_FILE, src_path, lambda t: feed_batches(tok, t, names), cal)

    def score(path: Path) -> float:
        return float(compare(onnx_embed(onnx_session(path), tok, run.texts), fp32).cosines.min())

    cfg = QuantConfig()
    quantize(src_path, out_path, cfg)
    first = score(out_path)
    details: dict[str, Any] = {
        "smoothquant": {"alpha": SMOOTH_ALPHA, "calibration_texts": len(cal)}
    }
    if first < gate:
        run.steps.say(f"int8 min cosine {first:.6f} < {gate}: searching layers to keep in fp32")
        found = rescue(src_path, out_path, cfg, score, gate)
        cfg = found.cfg
        details["rescue"] = {"first_min_cosine": round(first, 6), "steps": found.trail}
    emb = onnx_embed(onnx_session(out_path), tok, run.texts)
    vs_fp32, vs_ref = compare(emb, fp32), compare(emb, ref)
    low = float(vs_fp32.cosines.min())
    if low < gate:
        warnings.warn(
            f"int8 variant left out: min cosine vs fp32 {low:.6f} < gate {gate} "
            "even with every layer's MatMuls kept in fp32",
            stacklevel=3,
        )
        out_path.unlink()
        return None
    run.steps.say(f"int8 min cosine vs fp32 {low:.6f}")
    parity: tuple[Parity, ...] = (vs_fp32.parity("fp32", gate), vs_ref.parity(REFERENCE, None))
    return Variant("int8", INT8_FILE, "int8", parity, {**cfg.details(), **details})


def _export_fp16(run: _Run, fp32: np.ndarray, ref: np.ndarray, gate: float) -> Variant | None:
    """fp16 graph, gated against fp32 (see :mod:`umr.export.fp16_parity`)."""
    from umr.export.fp16_parity import FP16_FILE, build_fp16_variant
    from umr.export.tokenizer_files import TOKENIZER_FILE

    run.steps(f"convert to fp16, check vs fp32 (gate {gate})")
    tok = run.stage / TOKENIZER_FILE
    out = run.stage / FP16_FILE
    variant = build_fp16_variant(
        run.stage / FP32_FILE, out, tok, run.texts, fp32, ref, gate=gate, reference=REFERENCE
    )
    if variant is not None:
        run.steps.say(f"fp16 min cosine vs fp32 {variant.parity[0].min_cosine:.6f}")
    return variant


def _export_engine(
    run: _Run,
    inputs: tuple[str, ...],
    dims: dict[str, tuple[str | int, ...]],
    fp16: Variant | None,
    fp32: np.ndarray,
) -> Variant:
    """The fp16 variant with a TensorRT engine for this GPU (built and checked here)."""
    if fp16 is None:
        raise ExportError("the TensorRT engine is built from the fp16 variant, which failed")
    from umr.export.onnx_graph import OUTPUT_NAME
    from umr.export.tensorrt_engine import add_engine
    from umr.export.tokenizer_files import TOKENIZER_FILE
    from umr.runtime.trt_profile import build_profile

    run.steps("build the TensorRT engine of fp16 on this GPU, check vs fp32")
    profile = build_profile(inputs, dims, run.src.max_seq_length)
    tok = run.stage / TOKENIZER_FILE
    gate = fp16.parity[0].gate or 0.999
    return add_engine(run.stage, fp16, profile, OUTPUT_NAME, tok, run.texts, fp32, gate)


def _input_dims(stage: Path) -> dict[str, tuple[str | int, ...]]:
    """Each input's dims in the fp32 graph (names for dynamic dims, ints for fixed)."""
    import onnx

    model = onnx.load(str(stage / FP32_FILE), load_external_data=False)
    return {
        i.name: tuple(d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim)
        for i in model.graph.input
    }


def _graph_inputs(path: Path) -> tuple[str, ...]:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return tuple(i.name for i in model.graph.input)


def _manifest(
    src: SourceModel,
    inputs: tuple[str, ...],
    built: dict[str, Variant],
    files: dict[str, str],
    input_dims: dict[str, tuple[str | int, ...]],
) -> BundleManifest:
    from umr.export.onnx_graph import OUTPUT_NAME
    from umr.export.tokenizer_files import TOKENIZER_FILE

    return BundleManifest(
        name=src.name,
        dim=src.dim,
        pooling=src.pooling,
        normalize=True,
        max_seq_length=src.max_seq_length,
        inputs=inputs,
        output=OUTPUT_NAME,
        tokenizer=TOKENIZER_FILE,
        variants=built,
        files=files,
        source=_source_info(src),
        created_by=f"umr {umr.__version__}",
        input_dims=input_dims,
    )


def _source_info(src: SourceModel) -> dict[str, Any]:
    return {
        "model_dir": str(src.path),
        "model_name": src.name,
        "model_type": src.model_type,
        "weights": src.weights.name,
        "weights_sha256": sha256_file(src.weights),
        "versions": package_versions(_VERSIONED),
    }
