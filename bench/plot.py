"""bench_text.png: throughput, batch-1 latency and index QPS bars (matplotlib, Agg)."""

from __future__ import annotations

import os
from typing import Any

_COLORS = {"st": "#8c8c8c", "fp32": "#1f77b4", "int8": "#2ca02c"}


def _throughput(ax: Any, engines: dict[str, Any]) -> None:
    names = list(engines)
    values = [engines[n]["throughput"]["docs_per_s"] for n in names]
    bars = ax.bar(names, values, color=[_COLORS.get(n, "#555") for n in names])
    for bar, n in zip(bars, names, strict=True):
        x_st = engines[n]["throughput"]["x_st"]
        ax.annotate(
            f"{x_st:.2f}x",
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=9,
        )
    ax.set_title("Throughput (docs/s, batch 32)")
    ax.set_ylabel("docs/s")


def _latency(ax: Any, engines: dict[str, Any]) -> None:
    names = list(engines)
    x = range(len(names))
    for key, offset, alpha in (("p50_ms", -0.25, 1.0), ("p95_ms", 0.0, 0.6), ("p99_ms", 0.25, 0.3)):
        ax.bar(
            [i + offset for i in x],
            [engines[n]["latency"][key] for n in names],
            width=0.25,
            alpha=alpha,
            label=key.replace("_ms", ""),
            color=[_COLORS.get(n, "#555") for n in names],
        )
    ax.set_xticks(list(x), names)
    ax.set_yscale("log")
    ax.set_title("Batch-1 latency (ms, log)")
    ax.legend(fontsize=8)


def _index(ax: Any, index: dict[str, Any]) -> None:
    qps = index["qps"]
    names = ["umr HNSW", "hnswlib", "brute force"]
    keys = ["umr", "hnswlib", "brute"]
    x = range(len(names))
    ax.bar([i - 0.2 for i in x], [qps[f"{k}_loop"] for k in keys], width=0.4, label="batch-1")
    ax.bar([i + 0.2 for i in x], [qps[f"{k}_batch"] for k in keys], width=0.4, label="batched")
    ax.set_xticks(list(x), names)
    ax.set_yscale("log")
    ax.set_title(f"Index QPS ({index['size']} vectors, log)")
    ax.legend(fontsize=8)


def write_plot(report: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Draw the three panels for ``report`` and save a PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    _throughput(axes[0], report["engines"])
    _latency(axes[1], report["engines"])
    _index(axes[2], report["index"])
    fig.suptitle(
        f"umr bench text: {report['bundle']['name']}, {report['config']['threads']} threads"
    )
    fig.tight_layout()
    fig.savefig(os.fspath(path), dpi=110)
    plt.close(fig)
