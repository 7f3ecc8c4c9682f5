"""bench_image.png / bench_fused.png: throughput and batch-1 latency bars, plus the
end-to-end fused query against its target (matplotlib, Agg)."""

from __future__ import annotations

import os
from typing import Any

_COLORS = {"torch": "#8c8c8c", "fp32": "#1f77b4", "int8": "#2ca02c"}


def _throughput(ax: Any, engines: dict[str, Any], kind: str) -> None:
    names = list(engines)
    values = [engines[n]["throughput"]["items_per_s"] for n in names]
    bars = ax.bar(names, values, color=[_COLORS.get(n, "#555") for n in names])
    for bar, n in zip(bars, names, strict=True):
        x = engines[n]["throughput"]["x_torch"]
        label = f"{x:.2f}x" if x is not None else ""
        ax.annotate(
            label, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom"
        )
    ax.set_title(f"Throughput ({kind} inputs/s, batch 32)")


def _latency(ax: Any, engines: dict[str, Any], key: str, title: str, target: float | None) -> None:
    names = [n for n in engines if key in engines[n]]
    x = range(len(names))
    for q, offset, alpha in (("p50_ms", -0.25, 1.0), ("p95_ms", 0.0, 0.6), ("p99_ms", 0.25, 0.3)):
        ax.bar(
            [i + offset for i in x],
            [engines[n][key][q] for n in names],
            width=0.25,
            alpha=alpha,
            label=q.replace("_ms", ""),
            color=[_COLORS.get(n, "#555") for n in names],
        )
    if target is not None:
        ax.axhline(target, color="#d62728", linestyle="--", linewidth=1, label="target")
    ax.set_xticks(list(x), names)
    ax.set_title(title)
    ax.set_ylabel("ms")
    ax.legend(fontsize=8)


def write_plot(report: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Two panels (three for fused: the end-to-end query) saved as a PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from umr.bench.mm_report import MAX_E2E_P99_MS, MAX_FUSED_P50_MS

    kind, engines = report["kind"], report["engines"]
    fused = kind == "fused"
    fig, axes = plt.subplots(1, 3 if fused else 2, figsize=(14 if fused else 10, 4.2))
    _throughput(axes[0], engines, kind)
    _latency(
        axes[1], engines, "latency", "Batch-1 latency (ms)", MAX_FUSED_P50_MS if fused else None
    )
    if fused:
        _latency(axes[2], engines, "e2e", "End-to-end fused query (ms)", MAX_E2E_P99_MS)
    fig.suptitle(
        f"umr bench {kind}: {report['bundle']['name']}, {report['config']['threads']} threads, "
        f"{report['data']['source']} inputs"
    )
    fig.tight_layout()
    fig.savefig(os.fspath(path), dpi=110)
    plt.close(fig)
