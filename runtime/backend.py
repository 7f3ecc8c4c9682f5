"""What runs a bundle's graph: an ONNX Runtime session on a provider, or a TensorRT engine.

:func:`plan_backend` decides (cheap: no model is loaded, so a missing provider fails
before the bundle's files are hashed); :func:`open_backend` loads. ``"auto"`` takes,
best first: a TensorRT engine the bundle carries for this GPU and TensorRT version,
ORT's TensorRT EP (unless the graph has ORT-only ops), CUDA, CPU; it logs its choice.
An explicit request is never changed: it works or raises, saying what is missing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from umr.runtime.cuda_io import BatchRunner, make_runner
from umr.runtime.gpu_env import describe_installed, gpu_info, importable, installed_versions
from umr.runtime.onnx_domains import ORT_ONLY_DOMAINS, opset_domains
from umr.runtime.providers import (
    ENGINE,
    ORT_NAMES,
    ProviderList,
    available_providers,
    check_known,
    pick,
    resolve_providers,
    short_name,
)
from umr.runtime.session import create_session, thread_plan
from umr.runtime.trt_profile import cache_key, default_cache_root, profile_for

from umr.bundle import BundleManifest, Variant
from umr.errors import BundleError, ProviderUnavailableError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plan:
    """What :func:`open_backend` will open."""

    provider: str  # "cpu", "cuda", "tensorrt" or "tensorrt-engine"
    path: Path  # the ONNX graph, or the engine file
    providers: ProviderList = field(default_factory=list)  # empty for an engine
    device_id: int = 0
    max_rows: int | None = None  # rows per call the shape profile allows (TensorRT EP)
    dtype: str = "float32"  # the graph's compute type (fp16 graphs open differently on a CPU)


@dataclass(frozen=True)
class Backend:
    """An opened graph: ``run(feeds) -> [rows, dim]``, the active provider, its limits."""

    session: Any  # the ORT session, or the TrtEngineRunner
    run: BatchRunner
    provider: str
    max_rows: int | None
    is_ort: bool


def plan_backend(
    root: Path,
    manifest: BundleManifest,
    variant: str,
    requested: str,
    *,
    device_id: int = 0,
    available: list[str] | None = None,
) -> Plan:
    """Decide how to run ``variant`` on ``requested``; raise ``ProviderUnavailableError``."""
    check_known(requested)
    var = manifest.variant(variant)
    if requested in (ENGINE, "auto"):
        engine = _engine_plan(root, manifest, var, device_id, required=requested == ENGINE)
        if engine is not None:
            return engine
    have = available_providers() if available is None else available
    trt_candidate = requested == "tensorrt" or (
        requested == "auto" and ORT_NAMES["tensorrt"] in have
    )
    refusal = tensorrt_refusal(root / var.file, var) if trt_candidate else None
    if requested == "tensorrt" and refusal:
        raise ProviderUnavailableError(refusal)
    chosen = pick(requested, have, ("tensorrt",) if refusal else ())
    if chosen != "tensorrt":
        providers = resolve_providers(chosen, have, device_id=device_id)
        return Plan(chosen, root / var.file, providers, device_id, dtype=var.dtype)
    profile = profile_for(manifest)
    gpu = gpu_info(device_id)
    if gpu is None:
        log.warning("no GPU name found (no cuda-python, no nvidia-smi): cache key uses 'unknown'")
    versions = {
        k: v for k, v in installed_versions().items() if k in ("onnxruntime-gpu", "tensorrt")
    }
    key = cache_key(
        manifest.files[var.file],
        gpu.name if gpu else "unknown",
        profile,
        versions,
        label=manifest.name,
    )
    providers = resolve_providers(
        chosen,
        have,
        device_id=device_id,
        trt_cache_dir=default_cache_root() / key,
        trt_profile=profile,
        trt_fp16=var.dtype == "float16",
    )
    return Plan(chosen, root / var.file, providers, device_id, profile.max_batch, var.dtype)


def open_backend(
    plan: Plan, manifest: BundleManifest, threads: int, graph: str = "text"
) -> Backend:
    """Load what ``plan`` names; ``threads`` and ``graph`` (``"text"`` or ``"fused"``) as
    in :func:`umr.runtime.session.thread_plan`."""
    if plan.provider == ENGINE:
        from umr.runtime.trt_engine import TrtEngineRunner

        runner = TrtEngineRunner(plan.path, manifest.inputs, manifest.output, plan.device_id)
        log.info("running TensorRT engine %s without ONNX Runtime", plan.path.name)
        return Backend(runner, runner, ENGINE, runner.max_rows, is_ort=False)
    intra_op, _ = thread_plan(short_name(plan.providers[0][0]), threads, graph, plan.dtype)
    session, active = create_session(plan.path, plan.providers, intra_op, dtype=plan.dtype)
    run = make_runner(session, active, manifest.output, plan.device_id)
    return Backend(session, run, active, plan.max_rows, is_ort=True)


def tensorrt_refusal(path: Path, variant: Variant) -> str | None:
    """Why TensorRT cannot take ``variant``'s graph, or None when it can."""
    try:
        bad = sorted(opset_domains(path) & ORT_ONLY_DOMAINS)
    except (OSError, BundleError):
        return None  # missing or corrupt file: the checksum pass names it
    if bad:
        return (
            f"variant {variant.name!r} ({path.name}) uses ONNX Runtime-only ops (domain "
            f"{', '.join(bad)}), which TensorRT cannot parse; give TensorRT a plain export "
            "(variant 'fp32' or 'fp16') or use provider='cuda'"
        )
    if "dynamic" in str(variant.details.get("activations", "")).lower():
        return (
            f"variant {variant.name!r} is dynamically quantized (int8 scales computed at run "
            "time), which TensorRT does not build (its int8 needs Q/DQ nodes); use variant "
            "'fp16' or 'fp32' with TensorRT, or provider='cuda'"
        )
    return None


def _engine_plan(
    root: Path, manifest: BundleManifest, var: Variant, device_id: int, *, required: bool
) -> Plan | None:
    """A plan for the variant's engine matching this GPU; None (or raise if ``required``)."""
    from umr.runtime.trt_engine import (
        describe_mismatch,
        engine_records,
        match_engine,
        tensorrt_version,
    )

    records = engine_records(var)
    if not records and not required:
        return None
    missing = [m for m in ("tensorrt", "cuda") if not importable(m)]
    if missing:
        if required:
            raise ProviderUnavailableError(
                f"provider {ENGINE!r} needs the tensorrt and cuda-python packages; missing: "
                f"{', '.join('cuda-python' if m == 'cuda' else m for m in missing)}; packages: "
                f"{describe_installed()}; to fix: pip install 'umr[gpu]'"
            )
        return None
    gpu, version = gpu_info(device_id), tensorrt_version()
    record = match_engine(records, gpu, version)
    if record is None:
        why = describe_mismatch(var.name, records, gpu, version)
        if required:
            raise ProviderUnavailableError(why)
        log.info("provider 'auto' skips the TensorRT engine: %s", why)
        return None
    if manifest.files.get(record.file) != record.sha256:
        raise BundleError(f"{root}: engine {record.file} is not listed with its sha256")
    log.info("provider %r: engine %s (%s, TensorRT %s)", ENGINE, record.file, record.gpu, version)
    return Plan(ENGINE, root / record.file, [], device_id)
