"""What machine and software a benchmark ran on (read without importing torch)."""

from __future__ import annotations

import datetime as dt
import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

_PACKAGES = (
    "onnxruntime",
    "onnxruntime-gpu",
    "torch",
    "sentence-transformers",
    "numpy",
    "tokenizers",
    "hnswlib",
)
_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16")


def _cpuinfo() -> dict[str, str]:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    info: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        info.setdefault(key.strip(), value.strip())
    return info


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def machine_info(threads: int) -> dict[str, Any]:
    """CPU model and ISA flags, cores, threads used, OS, Python and package versions, date."""
    cpu = _cpuinfo()
    flags = set(cpu.get("flags", "").split())
    return {
        "cpu": cpu.get("model name") or platform.processor() or "unknown",
        "cpu_flags": [f for f in _FLAGS if f in flags],
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "threads": threads,
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "packages": {name: _version(name) for name in _PACKAGES},
        "date_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def machine_line(info: dict[str, Any]) -> str:
    """One human line: CPU, cores/threads, OS, versions, date."""
    pk = info["packages"]
    return (
        f"{info['cpu']} ({info['cores']} cores, {info['threads']} threads; "
        f"{', '.join(info['cpu_flags']) or 'no AVX flags'}), {info['os']}, "
        f"Python {info['python']}, onnxruntime {pk.get('onnxruntime')}, "
        f"torch {pk.get('torch')}, {info['date_utc']}"
    )
