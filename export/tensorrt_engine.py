"""``umr export --tensorrt``: a serialized TensorRT engine of the fp16 variant, for this GPU.

The network is strongly typed (TensorRT 10's ``STRONGLY_TYPED`` flag; TensorRT 11 has no
other kind): the ONNX types decide each layer's precision, so float16 comes from the
fp16 variant's graph and the engine keeps its float32 inputs/outputs. (TensorRT 11
dropped the builder's FP16 flag; a weakly typed fp16 build is not an option to offer.)
TensorRT gets plain ONNX only: ORT-only ``com.microsoft`` ops are refused before the
build, and model-local functions (umr's pooling) are inlined, which every TensorRT
parser version reads. The optimization profile comes from the manifest
(:mod:`umr.runtime.trt_profile`); the builder's timing cache is kept per GPU and
TensorRT version, so a rebuild re-times nothing it has timed before.

Nothing of TensorRT can be built or even parsed without a CUDA device, so
:func:`require_engine_build` runs first and says what is missing. A multimodal bundle's
fp16 variant gets an engine of each of its two graphs the same way
(:mod:`umr.export.multimodal_engines`, with :func:`checked_engine` and :func:`with_engine`).
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from umr.runtime.gpu_env import GPU_EXTRA, GpuInfo, describe_installed, gpu_info, importable
from umr.runtime.onnx_domains import require_plain_onnx
from umr.runtime.trt_engine import ENGINES_KEY, FUSED_KEY, EngineRecord, TrtEngineRunner
from umr.runtime.trt_profile import ShapeProfile, default_cache_root

from umr.atomic import atomic_write_bytes
from umr.bundle import Variant, sha256_file
from umr.errors import ExportError, ProviderUnavailableError

WORKSPACE_BYTES = 4 << 30
"""Scratch memory the builder may give a layer's tactics (4 GiB: any tactic an encoder of
this size wants; the engine's own run-time memory is sized by TensorRT separately)."""


def require_engine_build(device_id: int = 0) -> GpuInfo:
    """The GPU to build on; ``ProviderUnavailableError`` naming what is missing otherwise."""
    missing = [
        f"the {pkg} package"
        for pkg, module in (("tensorrt", "tensorrt"), ("cuda-python", "cuda"))
        if not importable(module)
    ]
    gpu = gpu_info(device_id)
    if gpu is None:
        smi = "found" if shutil.which("nvidia-smi") else "not found"
        missing.append(f"a CUDA GPU (device {device_id}: none found; nvidia-smi {smi})")
    if missing:
        raise ProviderUnavailableError(
            "umr export --tensorrt builds the engine on the GPU that will run it (TensorRT "
            f"cannot build or parse anything without a CUDA device); missing: "
            f"{'; '.join(missing)}; packages: {describe_installed()}; to fix: {GPU_EXTRA} on "
            "a machine with an NVIDIA GPU and driver"
        )
    assert gpu is not None
    return gpu


def engine_file_name(onnx_file: str, gpu: GpuInfo) -> str:
    """``model.fp16.onnx`` on an H100 -> ``model.fp16.nvidia-h100-80gb-hbm3.engine``."""
    return f"{Path(onnx_file).stem}.{gpu.slug}.engine"


def build_engine(
    onnx_path: Path,
    engine_path: Path,
    profile: ShapeProfile,
    gpu: GpuInfo,
    *,
    workspace: int = WORKSPACE_BYTES,
) -> EngineRecord:
    """Build a strongly typed engine of ``onnx_path`` for ``profile``; write ``engine_path``."""
    import tensorrt as trt

    require_plain_onnx(onnx_path, f"graph {onnx_path.name}")
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(_network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    with tempfile.TemporaryDirectory(prefix="umr-trt-") as tmp:
        inlined = _inline_functions(onnx_path, Path(tmp) / "model.onnx")
        if not parser.parse_from_file(str(inlined)):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise ExportError(f"TensorRT could not parse {onnx_path.name}: {errors}")
    _check_network_inputs(network, profile)
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace)
    opt = builder.create_optimization_profile()
    for name, smallest, typical, biggest in profile.shapes:
        opt.set_shape(name, smallest, typical, biggest)
    config.add_optimization_profile(opt)
    cache_path = default_cache_root() / "timing" / f"{gpu.slug}-trt{trt.__version__}.cache"
    cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.is_file() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise ExportError(f"TensorRT failed to build an engine of {onnx_path.name} (see its log)")
    engine_path.write_bytes(bytes(plan))
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(cache_path, bytes(cache.serialize()))
    return EngineRecord(
        file=engine_path.name,
        sha256=sha256_file(engine_path),
        gpu=gpu.name,
        compute_capability=gpu.compute_capability,
        tensorrt=str(trt.__version__),
        profile=profile.to_json(),
    )


def add_engine(
    stage: Path,
    fp16: Variant,
    profile: ShapeProfile,
    output: str,
    tokenizer_path: Path,
    texts: Sequence[str],
    fp32_emb: np.ndarray,
    gate: float,
) -> Variant:
    """Build the engine of ``fp16`` into ``stage``, check it on the GPU against fp32 on
    ``texts`` (``ExportError`` under ``gate``), and return ``fp16`` with the engine listed."""
    from umr.export.parity import feed_batches

    gpu = require_engine_build()
    inputs = [name for name, *_ in profile.shapes]
    feeds = list(feed_batches(tokenizer_path, texts, inputs, batch_size=profile.max_batch))
    entry, cos = checked_engine(stage, fp16.file, profile, output, feeds, fp32_emb, gate, gpu)
    entry["parity"] = engine_parity(cos, gate)
    return with_engine(fp16, entry)


def checked_engine(
    stage: Path,
    onnx_file: str,
    profile: ShapeProfile,
    output: str,
    feeds: Sequence[dict[str, np.ndarray]],
    expected: np.ndarray,
    gate: float,
    gpu: GpuInfo,
) -> tuple[dict[str, Any], np.ndarray]:
    """Build the engine of ``stage / onnx_file`` for ``profile`` and run ``feeds`` through
    it: its manifest entry (no parity yet) and its per-row cosines to ``expected`` (fp32).
    Under ``gate`` the engine is deleted and ``ExportError`` says by how much."""
    path = stage / engine_file_name(onnx_file, gpu)
    record = build_engine(stage / onnx_file, path, profile, gpu)
    inputs = [name for name, *_ in profile.shapes]
    cos = check_engine(path, inputs, output, feeds, expected)
    if not np.isfinite(cos).all() or cos.min() < gate:
        path.unlink()
        raise ExportError(
            f"TensorRT engine of {onnx_file} on {gpu.name}: min cosine vs fp32 "
            f"{np.nanmin(cos):.6f} < gate {gate} over {len(cos)} items"
        )
    return {**record.to_json(), "onnx": onnx_file, "strongly_typed": True}, cos


def engine_parity(cos: np.ndarray, gate: float, reference: str = "fp32") -> dict[str, Any]:
    """The ``parity`` of an engine entry: its cosines to the fp32 graph's vectors."""
    return {
        "reference": reference,
        "n_texts": len(cos),
        "min_cosine": round(float(cos.min()), 6),
        "mean_cosine": round(float(cos.mean()), 6),
        "gate": gate,
    }


def with_engine(variant: Variant, entry: dict[str, Any], *, fused: bool = False) -> Variant:
    """``variant`` with ``entry`` appended to its engines, or to its fused graph's
    (``details["fused_graph"]["tensorrt_engines"]``) when ``fused``."""
    if not fused:
        return dataclasses.replace(variant, details=_appended(variant.details, entry))
    own = variant.details.get(FUSED_KEY)
    graph = _appended(own if isinstance(own, Mapping) else {}, entry)
    return dataclasses.replace(variant, details={**variant.details, FUSED_KEY: graph})


def _appended(details: Mapping[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    return {**details, ENGINES_KEY: [*details.get(ENGINES_KEY, []), entry]}


def check_engine(
    engine_path: Path,
    inputs: Sequence[str],
    output: str,
    feeds: Sequence[dict[str, np.ndarray]],
    expected: np.ndarray,
) -> np.ndarray:
    """Run ``feeds`` through the built engine; per-row cosines to ``expected`` (fp32)."""
    runner = TrtEngineRunner(engine_path, inputs, output)
    try:
        got = np.concatenate([runner(f) for f in feeds])
    finally:
        runner.close()
    norms = np.linalg.norm(got, axis=1) * np.linalg.norm(expected, axis=1)
    return np.sum(got * expected, axis=1) / np.maximum(norms, 1e-12)


def _network_flags(trt: object) -> int:
    """``STRONGLY_TYPED`` where the flag exists (TensorRT 10); 0 where it is the only mode."""
    flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)  # type: ignore[attr-defined]
    return 0 if flag is None else 1 << int(flag)


def _inline_functions(src: Path, dst: Path) -> Path:
    """``src`` with model-local functions inlined, saved to ``dst`` (weights beside it)."""
    import onnx
    from onnx import inliner
    from umr.export.onnx_graph import save_model

    model = onnx.load(str(src))
    if not model.functions:
        return src
    flat = inliner.inline_local_functions(model)
    used = {n.domain for n in flat.graph.node} | {""}
    kept = [o for o in flat.opset_import if o.domain in used]  # the functions' domains go
    del flat.opset_import[:]
    flat.opset_import.extend(kept)
    save_model(flat, dst)
    return dst


def _check_network_inputs(network: object, profile: ShapeProfile) -> None:
    names = sorted(network.get_input(i).name for i in range(network.num_inputs))  # type: ignore[attr-defined]
    wanted = sorted(name for name, *_ in profile.shapes)
    if names != wanted:
        raise ExportError(f"TensorRT network inputs {names} differ from the profile's {wanted}")
