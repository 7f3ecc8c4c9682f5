"""`umr bench gpu`: a bundle on a GPU through ONNX Runtime, side by side with the CPU EP.

Each engine is one ``provider:variant`` (``cuda:fp32``, ``cuda:fp16``, ``cpu:fp32``, ...)
loaded through :class:`umr.runtime.Embedder` exactly as a user would (the CUDA EP runs with
IO binding). For every input kind the bundle has (text; image and text+image for a
multimodal bundle) it measures throughput over ``items`` inputs and batch-1 latency, in
interleaved rounds so drift on a shared machine hits every engine alike; medians are
reported. Parity on this machine: the cosine of each engine's vectors to ``cpu:fp32``'s.

Images are synthetic ``HxWx3`` uint8 arrays (no decoding), so the figures are the model's
and the preprocessing's, not a JPEG decoder's.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from umr.bench.stats import latency_summary, median

from umr.errors import InputValueError

KINDS = ("text", "image", "fused")
INSTRUCTION = "in dark skin tone"
REFERENCE = "cpu:fp32"


@dataclass(frozen=True)
class GpuBenchConfig:
    """What one ``umr bench gpu`` run measures."""

    bundle: Path
    engines: tuple[str, ...] = ("cuda:fp32", "cuda:fp16", REFERENCE)
    items: int = 256
    rounds: int = 3
    latency_reps: int = 100
    text_batch: int = 64
    image_batch: int = 32
    cpu_threads: int = 0  # 0: every core
    image_size: int = 96
    seed: int = 0
    kinds: tuple[str, ...] = field(default=KINDS)

    def __post_init__(self) -> None:
        for name in ("items", "rounds", "latency_reps", "text_batch", "image_batch"):
            if int(getattr(self, name)) <= 0:
                raise InputValueError(f"{name}: must be positive, got {getattr(self, name)}")
        for spec in self.engines:
            provider, _, variant = spec.partition(":")
            if not variant or provider not in ("cpu", "cuda", "tensorrt"):
                raise InputValueError(
                    f"engine {spec!r}: expected PROVIDER:VARIANT with PROVIDER one of "
                    "cpu, cuda, tensorrt (e.g. cuda:fp16)"
                )
        if REFERENCE not in self.engines:
            raise InputValueError(f"engines must include {REFERENCE!r}, the parity reference")


def bench_texts(n: int) -> list[str]:
    """``n`` real English texts of mixed length (the export's parity sentences, cycled)."""
    from umr.export.sentences import PARITY_TEXTS

    base = [t for t in PARITY_TEXTS if len(t) < 400]
    return [base[i % len(base)] for i in range(n)]


def bench_images(n: int, size: int, seed: int) -> list[np.ndarray]:
    """``n`` synthetic RGB images: smooth gradients plus noise, each different."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    out = []
    for _ in range(n):
        a, b, c = rng.uniform(0, 255, 3)
        base = np.stack([a * xx, b * yy, c * (1 - xx)], axis=-1)
        noise = rng.normal(0, 12, (size, size, 3))
        out.append(np.clip(base + noise, 0, 255).astype(np.uint8))
    return out


class Engine:
    """One ``provider:variant`` Embedder, with a call per input kind."""

    def __init__(self, spec: str, bundle: Path, cpu_threads: int) -> None:
        from umr.runtime import Embedder

        provider, _, variant = spec.partition(":")
        threads = cpu_threads or None
        kwargs: dict[str, Any] = {"variant": variant, "provider": provider}
        if provider == "cpu" and threads:
            kwargs["threads"] = threads
        self.spec = spec
        self.embedder = Embedder.load(bundle, **kwargs)

    def call(self, kind: str, texts: list[str], images: list[Any], batch: int) -> np.ndarray:
        """Embed ``kind`` inputs in batches of ``batch`` through the public API."""
        e = self.embedder
        if kind == "text":
            return e.embed_text(texts, batch_size=batch)
        if kind == "image":
            return e.embed_image(images, batch_size=batch)
        return e.embed_fused(texts, images, instruction=INSTRUCTION, batch_size=batch)


def _timed(fn: Callable[[], np.ndarray]) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def _cosines(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    cos = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return {"min_cosine": float(cos.min()), "mean_cosine": float(cos.mean())}


def run_gpu_bench(cfg: GpuBenchConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Measure every engine on every kind; returns the report's ``results`` part."""
    engines = [Engine(spec, cfg.bundle, cfg.cpu_threads) for spec in cfg.engines]
    kinds = [k for k in cfg.kinds if k == "text" or "image" in engines[0].embedder.modalities]
    texts = bench_texts(cfg.items)
    images = bench_images(cfg.items, cfg.image_size, cfg.seed)
    batch = {"text": cfg.text_batch, "image": cfg.image_batch, "fused": cfg.image_batch}
    seconds: dict[tuple[str, str], list[float]] = {}
    latency: dict[tuple[str, str], list[float]] = {}
    vectors: dict[tuple[str, str], np.ndarray] = {}
    for e in engines:  # warm-up: first calls build arenas, cuDNN plans, thread pools
        for kind in kinds:
            e.call(kind, texts[:8], images[:8], batch[kind])
    for r in range(cfg.rounds):
        for e in engines:
            for kind in kinds:
                key = (e.spec, kind)
                call = functools.partial(e.call, kind)
                took, out = _timed(functools.partial(call, texts, images, batch[kind]))
                seconds.setdefault(key, []).append(took)
                vectors.setdefault(key, out)
                lat = latency.setdefault(key, [])
                for i in range(cfg.latency_reps):
                    one = slice(i % cfg.items, i % cfg.items + 1)
                    lat.append(_timed(functools.partial(call, texts[one], images[one], 1))[0])
                log(
                    f"round {r + 1}/{cfg.rounds} {e.spec:<11} {kind:<6} "
                    f"{cfg.items / took:8.1f} items/s, batch-1 p50 "
                    f"{latency_summary(lat)['p50_ms']:.2f} ms"
                )
    return _results(engines, kinds, cfg, seconds, latency, vectors)


def _results(
    engines: Sequence[Engine],
    kinds: Sequence[str],
    cfg: GpuBenchConfig,
    seconds: dict[tuple[str, str], list[float]],
    latency: dict[tuple[str, str], list[float]],
    vectors: dict[tuple[str, str], np.ndarray],
) -> dict[str, Any]:
    rows = []
    for e in engines:
        for kind in kinds:
            key = (e.spec, kind)
            throughput = cfg.items / median(seconds[key])
            ref = cfg.items / median(seconds[(REFERENCE, kind)])
            rows.append(
                {
                    "engine": e.spec,
                    "provider": e.embedder.provider,
                    "kind": kind,
                    "batch_size": cfg.text_batch if kind == "text" else cfg.image_batch,
                    "items_per_s": throughput,
                    "speedup_vs_cpu_fp32": throughput / ref,
                    "batch1": latency_summary(latency[key]),
                    "parity_vs_cpu_fp32": _cosines(vectors[key], vectors[(REFERENCE, kind)]),
                }
            )
    return {"kinds": list(kinds), "rows": rows}
