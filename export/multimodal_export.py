"""``export_multimodal``: a training checkpoint -> a verified multimodal umr bundle.

The bundle embeds text, images and text+image pairs into one space with two graphs per
variant: the text graph (``model.onnx``: the LoRA-merged backbone exported through the
text export, :mod:`umr.export.onnx_graph`, with a ``pool_mask`` input so instructions
are attended to but not pooled) and the fused graph (``multimodal.onnx``: early fusion,
:mod:`umr.export.fused_graph`). Pooling + L2 are in both graphs. Every variant is checked
per input kind against the PyTorch model; ``umr.json`` records the image preprocessing.
With ``tensorrt``, the fp16 variant also gets a TensorRT engine of each graph, built and
checked on this machine's GPU (:mod:`umr.export.multimodal_engines`).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from umr.export.checkpoint_source import MergedCheckpoint, load_merged, write_text_source
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
from umr.bundle import MANIFEST_NAME, BundleManifest, ImageInput, Variant
from umr.errors import ExportError

if TYPE_CHECKING:
    from umr.export.multimodal_variants import VariantRun

FP32_GATE = 0.9999
INVARIANCE_GATE = 0.99999
"""Min cosine of an item alone vs in a padded batch for ``details["batch_invariant"]``."""
KNOWN_VARIANTS = ("fp32", "int8", "fp16")
DEFAULT_VARIANTS = ("fp32", "int8")
PARITY_ITEMS = 48
"""Items per kind (text, image, text+image) in the parity gates."""
_PLAIN_DOMAINS = ("", "ai.onnx", "ai.umr")
_VERSIONED = ("torch", "transformers", "optimum", "optimum-onnx", "onnx", "onnxruntime", "peft")


def export_multimodal(
    out_dir: str | os.PathLike[str],
    checkpoint: str | os.PathLike[str] = "default",
    *,
    variants: Sequence[str] = DEFAULT_VARIANTS,
    int8_gate: float = 0.99,
    fp16_gate: float = 0.999,
    tensorrt: bool = False,
    parity_data: str | os.PathLike[str] | None = "auto",
    backbone_dir: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> BundleManifest:
    """Export ``checkpoint`` (``"default"``: the shipped model; or a directory) to ``out_dir``.

    fp32 must reach a min cosine of 0.9999 against the PyTorch model (fp32, eval mode) on
    each of text, image and text+image items, else :class:`~umr.errors.ParityError`.
    int8 and fp16 must reach ``int8_gate``/``fp16_gate`` against fp32 on every kind, else
    they are left out with a warning. ``tensorrt`` adds the fp16 variant (if not asked
    for) and TensorRT engines of both its graphs, each checked on this GPU against the fp32
    graphs with ``fp16_gate`` (``ProviderUnavailableError`` before anything is loaded if
    this machine cannot build engines). ``parity_data`` is a records dataset directory
    (its ``test.jsonl`` and images) to draw real items from; ``"auto"`` uses
    ``artifacts/data/emoji`` when present, ``None`` synthetic images and built-in texts.
    The bundle is built beside ``out_dir`` and renamed into place only when complete.
    """
    from umr.export.fused_graph import require_early_fusion
    from umr.export.multimodal_items import default_data_dir

    out = Path(out_dir)
    wanted = _check_variants((*variants, "fp16") if tensorrt else variants)
    check_target(out, overwrite)
    if tensorrt:
        from umr.export.tensorrt_engine import require_engine_build

        require_engine_build()  # fail before minutes of export, not after
    data = default_data_dir() if parity_data == "auto" else parity_data
    n_steps = 5 + ("int8" in wanted) + ("fp16" in wanted) + tensorrt
    steps = Steps(total=n_steps, enabled=progress)
    with tempfile.TemporaryDirectory(prefix="umr-export-") as tmp, staging_dir(out) as stage:
        work = Path(tmp)
        steps(f"load checkpoint {checkpoint} and merge LoRA")
        ckpt = load_merged(checkpoint, backbone_dir)
        require_early_fusion(ckpt.model.cfg)  # before minutes of export, not after
        text_inputs = _text_graph(ckpt, work, stage, steps)
        _fused_graph(ckpt, work, stage, steps)
        run, fp32 = _fp32_variant(ckpt, work, stage, steps, data, calibrate="int8" in wanted)
        built = {"fp32": fp32}
        for name, gate in (("int8", int8_gate), ("fp16", fp16_gate)):
            if name in wanted:
                variant = _extra_variant(name, run, gate, steps)
                if name == "fp16" and tensorrt:
                    variant = _engines(ckpt, run, variant, text_inputs, gate, steps)
                if variant is not None:
                    built[name] = variant
        if "fp32" not in wanted:
            del built["fp32"]
            for f in (fp32.file, fp32.image_file):
                (stage / str(f)).unlink()
        if not built:
            raise ExportError(f"no variant passed its parity gate; asked for {list(wanted)}")
        for v in built.values():
            _check_plain(stage / v.file, stage / str(v.image_file))
        steps(f"write {MANIFEST_NAME}")
        manifest = _manifest(ckpt, text_inputs, built, stage, data)
        atomic_write_json(stage / MANIFEST_NAME, manifest.to_json())
        publish(stage, out)
    steps.say(f"done: {out} ({', '.join(built)})")
    return manifest


def _check_variants(variants: Sequence[str]) -> tuple[str, ...]:
    wanted = tuple(dict.fromkeys(variants))
    unknown = [v for v in wanted if v not in KNOWN_VARIANTS]
    if unknown or not wanted:
        raise ExportError(f"variants {list(variants)}: choose from {KNOWN_VARIANTS}")
    return wanted


def _text_graph(ckpt: MergedCheckpoint, work: Path, stage: Path, steps: Steps) -> tuple[str, ...]:
    """The merged backbone through the text export: Optimum + umr's pooling (pool_mask input)."""
    from umr.export.multimodal_variants import TEXT_GRAPHS
    from umr.export.onnx_graph import build_fp32_graph, export_transformer
    from umr.export.source import read_source
    from umr.export.tokenizer_files import write_tokenizer_files

    steps(f"export the text graph with optimum (max_seq_length {ckpt.max_seq_length})")
    src = read_source(write_text_source(ckpt, work / "text-source"))
    inputs = build_fp32_graph(export_transformer(src, work), stage / TEXT_GRAPHS["fp32"], "mean")
    if "pool_mask" not in inputs:  # append_pooling adds it; instructions depend on it
        raise ExportError(f"text graph inputs {list(inputs)} have no pool_mask")
    write_tokenizer_files(src.path, stage, ckpt.max_seq_length)
    return inputs


def _fused_graph(ckpt: MergedCheckpoint, work: Path, stage: Path, steps: Steps) -> None:
    from umr.export.fused_graph import build_fused_graph
    from umr.export.multimodal_variants import FUSED_GRAPHS

    v = ckpt.model.cfg.vision
    steps(f"export the fused text+image graph with optimum ({v.image_tokens} image tokens)")
    build_fused_graph(ckpt.model, work, stage / FUSED_GRAPHS["fp32"])


def _fp32_variant(
    ckpt: MergedCheckpoint,
    work: Path,
    stage: Path,
    steps: Steps,
    data: str | os.PathLike[str] | None,
    *,
    calibrate: bool,
) -> tuple[VariantRun, Variant]:
    """Gate the fp32 graphs against PyTorch per kind; measure batch invariance."""
    from umr.export.multimodal_items import KINDS, calibration_items, parity_items
    from umr.export.multimodal_parity import (
        Feeder,
        batch_invariance,
        compare_kinds,
        graphs_embed,
        torch_embed,
    )
    from umr.export.multimodal_variants import FUSED_GRAPHS, TEXT_GRAPHS, VariantRun
    from umr.export.tokenizer_files import TOKENIZER_FILE

    where = "synthetic images and built-in texts" if data is None else str(data)
    steps(f"fp32 parity vs PyTorch: {PARITY_ITEMS} items per kind from {where}")
    feeder = Feeder(stage / TOKENIZER_FILE, ckpt.max_seq_length, ckpt.model.cfg.image)
    items = parity_items(work, data, PARITY_ITEMS)
    pytorch = {kind: torch_embed(ckpt.model, feeder, items[kind]) for kind in KINDS}
    embed = graphs_embed(stage / TEXT_GRAPHS["fp32"], stage / FUSED_GRAPHS["fp32"], feeder)
    vs_torch, vectors = compare_kinds(embed, pytorch, items)
    vs_torch.require(FP32_GATE, items, "fp32 graphs vs PyTorch")
    invariance = batch_invariance(embed, vectors, items)
    lows = ", ".join(f"{k} {c.cosines.min():.6f}" for k, c in vs_torch.by_kind.items())
    steps.say(f"fp32 min cosine {lows}; alone vs batched {invariance:.6f}")
    details = {
        "graph": "plain onnx (no com.microsoft ops)",
        "pooling_node": "onnx function",
        "batch_invariant": invariance >= INVARIANCE_GATE,
        "batch_invariance_min_cosine": round(invariance, 6),
        "fused_graph": "optimum export with a custom OnnxConfig (UmrFusedOnnxConfig)",
    }
    variant = Variant(
        "fp32",
        TEXT_GRAPHS["fp32"],
        "float32",
        vs_torch.records("pytorch", FP32_GATE),
        details,
        FUSED_GRAPHS["fp32"],
    )
    calib = calibration_items(work, data) if calibrate else {}
    return VariantRun(stage, work, feeder, items, calib, vectors, pytorch), variant


def _extra_variant(name: str, run: VariantRun, gate: float, steps: Steps) -> Variant | None:
    from umr.export.multimodal_variants import build_fp16, build_int8

    if name == "int8":
        steps(f"smooth + quantize both graphs to int8, check each kind vs fp32 (gate {gate})")
        variant = build_int8(run, gate)
    else:
        steps(f"convert both graphs to fp16, check each kind vs fp32 (gate {gate})")
        variant = build_fp16(run, gate)
    if variant is not None:
        lows = ", ".join(
            f"{p.reference.split(':')[1]} {p.min_cosine:.6f}"
            for p in variant.parity
            if p.reference.startswith("fp32:")
        )
        steps.say(f"{name} min cosine vs fp32: {lows}")
    return variant


def _engines(
    ckpt: MergedCheckpoint,
    run: VariantRun,
    fp16: Variant | None,
    text_inputs: tuple[str, ...],
    gate: float,
    steps: Steps,
) -> Variant:
    """``fp16`` with TensorRT engines of its text and fused graphs for this GPU."""
    from umr.export.fused_graph import OUTPUT_NAME, graph_input_dims
    from umr.export.multimodal_engines import add_engines
    from umr.export.multimodal_variants import FUSED_GRAPHS, TEXT_GRAPHS
    from umr.runtime.trt_profile import build_profile, image_profile

    steps(f"build TensorRT engines of both fp16 graphs on this GPU, check vs fp32 (gate {gate})")
    length = ckpt.max_seq_length
    dims = graph_input_dims(run.stage / TEXT_GRAPHS["fp16"])
    profiles = {
        "text": build_profile(text_inputs, dims, length),
        "fused": image_profile(_image_input(ckpt, run.stage / FUSED_GRAPHS["fp16"]), length),
    }
    return add_engines(run, fp16, profiles, OUTPUT_NAME, gate)


def _check_plain(*paths: Path) -> None:
    """Refuse graphs with ops outside plain ONNX (+ umr's pooling function): TensorRT and
    every execution provider must be able to run the bundle."""
    import onnx

    for path in paths:
        model = onnx.load(str(path), load_external_data=False)
        nodes = [*model.graph.node, *(n for f in model.functions for n in f.node)]
        odd = sorted({n.domain for n in nodes if n.domain not in _PLAIN_DOMAINS})
        if odd:
            raise ExportError(f"{path.name}: has ops from {odd}; only plain ONNX is allowed")


def _manifest(
    ckpt: MergedCheckpoint,
    text_inputs: tuple[str, ...],
    built: dict[str, Variant],
    stage: Path,
    data: str | os.PathLike[str] | None,
) -> BundleManifest:
    from umr.export.fused_graph import OUTPUT_NAME, graph_input_dims
    from umr.export.multimodal_items import KINDS
    from umr.export.tokenizer_files import TOKENIZER_FILE

    any_variant = next(iter(built.values()))
    cfg = ckpt.model.cfg
    image = _image_input(ckpt, stage / str(any_variant.image_file))
    source = ckpt.source_info()
    source["parity_items"] = "synthetic" if data is None else str(data)
    source["versions"] = package_versions(_VERSIONED)
    return BundleManifest(
        name=cfg.name,
        dim=ckpt.model.dim,
        pooling="mean",
        normalize=True,
        max_seq_length=ckpt.max_seq_length,
        inputs=text_inputs,
        output=OUTPUT_NAME,
        tokenizer=TOKENIZER_FILE,
        variants=built,
        files=file_digests(stage),
        modalities=KINDS,
        source=source,
        created_by=f"umr {umr.__version__}",
        input_dims=graph_input_dims(stage / any_variant.file),
        image=image,
    )


def _image_input(ckpt: MergedCheckpoint, fused_graph: Path) -> ImageInput:
    """The manifest's ``image``: preprocessing, and the fused graph's inputs and dims."""
    from umr.export.fused_graph import INPUTS, graph_input_dims

    cfg = ckpt.model.cfg
    return ImageInput(
        preprocess=cfg.image,
        inputs=INPUTS,
        image_tokens=cfg.vision.image_tokens,
        input_dims=graph_input_dims(fused_graph),
    )
