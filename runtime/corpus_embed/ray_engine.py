"""The Ray engine: the shared reader as a Ray Data source, the batch function on an actor pool.

Each actor builds one :class:`~umr.runtime.corpus_embed.pipeline.BatchEmbedder`, so one
ONNX Runtime session per actor, loaded once and reused for every batch. The vector
tables stream back to the driver, which writes them with the same writer as the local
engine: the output is identical in layout, and a cluster needs no filesystem shared with
the driver (embedding, not writing ~1.5 KB per row, is the bottleneck).

Importing this module imports ray; :mod:`umr.runtime.corpus_embed.run` does so only for
``--engine ray``.
"""

from __future__ import annotations

import functools
import logging
import re
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import replace
from typing import Any

import pyarrow as pa
import ray
from ray.data import ActorPoolStrategy, DataContext, Datasource
from ray.data.block import BlockMetadata
from ray.data.datasource import ReadTask
from ray.util.annotations import RayDeprecationWarning
from umr.runtime.corpus_embed.pipeline import BatchEmbedder, EmbedBatchError, EmbedConfig
from umr.runtime.corpus_embed.reader import Corpus, Fields, InputFile, read_docs

log = logging.getLogger(__name__)

#: Ray restarts of a crashed actor, and retries of the batch it was running, before the run
#: fails. Ray Data's default is unbounded, which turns a batch that kills its worker every
#: time (out of memory, a native crash) into a run that never ends.
ACTOR_RESTARTS = 2
_BATCH_ERROR = re.compile(rf"{EmbedBatchError.__name__}: (.+)")


def embed_tables(
    corpus: Corpus,
    config: EmbedConfig,
    *,
    rows_per_batch: int,
    progress: bool = True,
    address: str | None = None,
    num_cpus: int | None = None,
    actors: int | None = None,
    log_to_driver: bool = False,
) -> Iterator[pa.Table]:
    """Vector tables for every row of ``corpus``, in input order, embedded on Ray actors.

    Joins the cluster at ``address``, or starts Ray locally with ``num_cpus`` CPUs
    (reusing a Ray already initialised in this process). ``actors`` defaults to one per
    CPU; each actor gets ``CPUs // actors`` CPUs (a fraction when there are more actors
    than CPUs) and as many ONNX Runtime threads (at least 1).
    """
    started = _init_ray(address, num_cpus, log_to_driver)
    saved = DataContext.get_current().copy()
    try:
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        pool = actors or cpus
        threads = config.threads or max(1, cpus // pool)
        # More actors than CPUs: give each a share, or the extra ones would never be placed.
        actor_cpus = float(threads) if pool * threads <= cpus else cpus / pool
        config = replace(config, threads=threads)
        dataset = _dataset(corpus, config, rows_per_batch, pool, actor_cpus, progress)
        log.info("ray: %d actors x %d threads on %d CPUs", pool, threads, cpus)
        yield from _unwrapped(dataset.iter_batches(batch_size=None, batch_format="pyarrow"))
    finally:
        DataContext._set_current(saved)  # our settings must not leak into the caller's Ray Data
        if started:
            ray.shutdown()


def _init_ray(address: str | None, num_cpus: int | None, log_to_driver: bool) -> bool:
    """Start or join Ray unless this process already did; True when we must shut it down."""
    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address, log_to_driver=log_to_driver)
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=log_to_driver)
    return True


def _dataset(
    corpus: Corpus,
    config: EmbedConfig,
    rows_per_batch: int,
    actors: int,
    actor_cpus: float,
    progress: bool,
) -> Any:
    ctx = DataContext.get_current()
    # Same order as the local engine, so both write the same parts row for row.
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = progress
    ctx.print_on_execution_start = progress
    # Reads take no CPU slot: actors may hold every CPU, and a read waiting for one of
    # them would never run. Reading is cheap next to embedding.
    ds = ray.data.read_datasource(CorpusDatasource(corpus, rows_per_batch), num_cpus=0)
    with warnings.catch_warnings():
        # max_restarts/max_task_retries have no named parameter yet, only the deprecated
        # **ray_remote_args; the unbounded default is worse than the warning.
        warnings.simplefilter("ignore", RayDeprecationWarning)
        return ds.map_batches(
            BatchEmbedder,
            fn_constructor_kwargs={"config": config},
            batch_size=rows_per_batch,
            batch_format="pyarrow",
            zero_copy_batch=True,
            compute=ActorPoolStrategy(size=actors),
            num_cpus=actor_cpus,
            max_restarts=ACTOR_RESTARTS,
            max_task_retries=ACTOR_RESTARTS,
        )


def _unwrapped(batches: Iterable[pa.Table]) -> Iterator[pa.Table]:
    """Re-raise a failed run as one-line :class:`EmbedBatchError` instead of Ray's traceback."""
    try:
        yield from batches
    except EmbedBatchError:
        raise
    except Exception as exc:
        raise EmbedBatchError(_message(exc)) from exc


def _message(exc: BaseException) -> str:
    # A remote exception's chain does not survive Ray's serialisation, only its text does.
    text = str(exc)
    found = _BATCH_ERROR.search(text)
    if found:
        return found.group(1)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return f"ray: the run failed: {type(exc).__name__}: {lines[-1] if lines else ''}"


def _read_file(file: InputFile, fields: Fields, rows: int) -> Iterator[pa.Table]:
    yield from read_docs(file, fields, rows)


class CorpusDatasource(Datasource):
    """A Ray Data source with one read task per input file, each running :func:`read_docs`."""

    def __init__(self, corpus: Corpus, rows: int) -> None:
        self.corpus = corpus
        self.rows = rows

    def get_name(self) -> str:
        return "UmrCorpus"

    def estimate_inmemory_data_size(self) -> int:
        return sum(f.path.stat().st_size for f in self.corpus.files)

    def get_read_tasks(self, parallelism: int, *args: Any, **kwargs: Any) -> list[ReadTask]:
        # One task per file whatever ``parallelism`` asks: JSONL cannot be split without
        # reading it, and each task yields many blocks, so the actors stay busy anyway.
        return [
            ReadTask(
                functools.partial(_read_file, f, self.corpus.fields, self.rows),
                BlockMetadata(
                    num_rows=f.rows,
                    size_bytes=f.path.stat().st_size,
                    input_files=[str(f.path)],
                    exec_stats=None,
                ),
            )
            for f in self.corpus.files
        ]
