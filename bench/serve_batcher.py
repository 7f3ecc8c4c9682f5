"""The server's micro-batcher and model with no HTTP in between: closed-loop clients
submit one text each straight to :class:`~umr.runtime.server.batching.MicroBatcher`.

Between the ceiling (the model alone in arrival-order batches) and the HTTP server,
this shows what the batching itself costs and what is left to HTTP.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import sys
import time
from typing import Any

from umr.bench.stats import latency_summary
from umr.runtime.server.batching import BatchStats, MicroBatcher
from umr.runtime.server.config import BatchConfig
from umr.runtime.server.embedding import embed_batch
from umr.runtime.server.inputs import TEXT
from umr.runtime.server.launch import GIL_SWITCH_INTERVAL_S

_KEY = (TEXT, None)  # the service's key for texts without an instruction


def measure_batcher(
    embedder: Any,
    texts: list[str],
    tokens: list[int],
    *,
    clients: int,
    duration_s: float,
    config: BatchConfig,
) -> dict[str, Any]:
    """Texts/s, latency and mean batch size of ``clients`` closed-loop submitters
    (client ``i`` sends texts ``i, i + clients, ...``, cycling) for ``duration_s``."""
    sizes: list[int] = []

    def on_batch(stats: BatchStats) -> None:
        sizes.append(stats.items)

    switch = sys.getswitchinterval()
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)  # as `umr serve` runs
    batcher = MicroBatcher(functools.partial(embed_batch, embedder), config, on_batch)
    try:
        latencies, elapsed = asyncio.run(_drive(batcher, texts, tokens, clients, duration_s))
    finally:
        batcher.close()
        sys.setswitchinterval(switch)
    return {
        "clients": clients,
        "texts_per_s": len(latencies) / elapsed,
        "latency": latency_summary(latencies),
        "mean_batch": sum(sizes) / len(sizes) if sizes else None,
    }


async def _drive(
    batcher: MicroBatcher, texts: list[str], tokens: list[int], clients: int, duration_s: float
) -> tuple[list[float], float]:
    latencies: list[float] = []
    start = time.perf_counter()
    stop = start + duration_s

    async def client(first: int) -> None:
        for i in itertools.count(first, clients):
            if time.perf_counter() >= stop:
                return
            j = i % len(texts)
            sent = time.perf_counter()
            await asyncio.wrap_future(batcher.submit(_KEY, [texts[j]], tokens[j]))
            latencies.append(time.perf_counter() - sent)

    await asyncio.gather(*(client(i) for i in range(clients)))
    return latencies, time.perf_counter() - start
