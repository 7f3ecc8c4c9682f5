"""Creating ONNX Runtime sessions with the options this runtime standardises on."""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

import onnxruntime as ort
from umr.runtime.providers import ProviderList, check_active

log = logging.getLogger(__name__)


def usable_cores() -> int:
    """CPU cores this process may run on (respects taskset/cgroup affinity, unlike os.cpu_count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS and Windows have no affinity call
        return max(1, os.cpu_count() or 1)


def thread_plan(
    provider: str, threads: int, graph: str = "text", dtype: str = "float32"
) -> tuple[int, int]:
    """``(intra_op_threads, workers)`` for ``threads`` cores on ``provider``.

    On the CPU, umr runs one session from ``threads`` workers, each taking whole
    batches. For the text graph the session is single-threaded. Measured on
    all-MiniLM-L6-v2 with 2 cores against one 2-thread session: fp32 187 vs 148 docs/s,
    int8 one text per call 344 vs 183, and batch-1 latency lower too (fp32 2.01 vs
    2.17 ms, int8 1.19 vs 1.44 ms). Against a 2-thread session with 2 workers, it gave
    8-15% more fp32 and 25% more int8 throughput. The ops of a small text encoder are too
    short to split across threads without losing more to synchronisation than the second
    core gives back.

    The fused text+image graph (``graph="fused"``) in floating point gets 2 intra-op
    threads. Its ops are larger: convolutions, and image tokens added to every sequence.
    With 2 workers on 2 cores, fp32 batch-1 pairs took 7.3-7.4 ms instead of 9.0-9.6 ms
    (median of 100). Images at batch 32 ran within noise of the single-threaded plan
    (385-398 vs 386-409 images/s). Its int8 graph lost both ways (4.2 -> 5.0 ms, 480 ->
    384 images/s), so int8 stays single-threaded. Concurrent runs share the session's one
    extra pool thread, so this cannot oversubscribe more cores. A GPU provider gets one
    worker.
    """
    if provider != "cpu":
        return (threads, 1)
    two = graph == "fused" and dtype in ("float32", "float16")
    return (min(2, threads) if two else 1, threads)


def session_options(threads: int, *, layout_opt: bool = True) -> ort.SessionOptions:
    """Options for one embedding session using ``threads`` intra-op threads.

    Inter-op parallelism buys nothing for a transformer (a chain of ops) and its
    thread pool competes with intra-op for the same cores, so it is off.
    ``layout_opt=False`` stops at ORT's "extended" level, without the CPU layout
    transformations (see :func:`create_session`).
    """
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise ValueError(f"threads must be a positive int, got {threads!r}")
    opts = ort.SessionOptions()
    opts.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if layout_opt
        else ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    )
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3  # ORT warns about unused initializers etc.; not actionable here
    # Spinning workers burn the cores they wait on. On a loaded 2-core box (the normal
    # case: a server also tokenizes, indexes, answers HTTP) spinning measured 1.5x
    # slower throughput and 2.7x slower batch-1 median latency; idle, it gained ~10%.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return opts


def create_session(
    model_path: str | os.PathLike[str],
    providers: ProviderList,
    threads: int,
    *,
    dtype: str = "float32",
) -> tuple[ort.InferenceSession, str]:
    """Open ``model_path`` on ``providers``; return the session and its active provider.

    An fp16 graph (``dtype="float16"``) on the CPU provider skips ORT's layout
    optimisations: with them, ONNX Runtime 1.32 segfaults while opening the fused
    text+image fp16 graph (its Conv layers), and fp16 on a CPU is a correctness path,
    not a fast one. Raises ``ProviderUnavailableError`` when ORT fell back from the
    provider asked for.
    """
    cpu_only = all(name == "CPUExecutionProvider" for name, _ in providers)
    if not cpu_only:
        preload_cuda_libraries()
    sess = ort.InferenceSession(
        str(Path(model_path)),
        sess_options=session_options(threads, layout_opt=not (cpu_only and dtype == "float16")),
        providers=[name for name, _ in providers],
        provider_options=[opts for _, opts in providers],
    )
    return sess, check_active(sess, providers)


@functools.lru_cache(maxsize=1)
def preload_cuda_libraries() -> bool:
    """Load CUDA and cuDNN before a GPU session opens, once per process.

    onnxruntime-gpu's CUDA provider finds ``libcublas``/``libcudnn`` only on the loader's
    path, while pip installs them (the ``nvidia-*`` wheels that torch brings too) inside
    site-packages. ``onnxruntime.preload_dlls`` (1.21+) loads them from there, or reuses
    torch's. Best effort: where it is missing or fails, the libraries may still be on the
    system path, and if not, :func:`check_active` reports the fallback to the CPU.
    """
    preload = getattr(ort, "preload_dlls", None)
    if preload is None:
        return False
    try:
        preload()
    except Exception as exc:  # any failure only means "not preloaded"
        log.debug("onnxruntime.preload_dlls() failed: %s", exc)
        return False
    return True
