"""One embed-corpus run: validate the input, embed with an engine, write, check, manifest last.

The order is what makes a run safe: every input row is validated before the output
directory is touched; the manifest is written only after the row count and the ids
written match the input exactly, so a failed or partial run never looks complete.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
from umr.runtime.corpus_embed.faults import faults_from_env
from umr.runtime.corpus_embed.pipeline import ATTEMPTS, EmbedConfig
from umr.runtime.corpus_embed.reader import DEFAULT_FIELDS, Corpus, Fields, scan
from umr.runtime.corpus_embed.vectors import DEFAULT_ROWS_PER_FILE
from umr.runtime.corpus_embed.writer import VectorWriter, prepare_out_dir, write_manifest

from umr.bundle import read_manifest
from umr.errors import DataError, InputValueError

log = logging.getLogger(__name__)

ENGINES = ("local", "ray")
#: Rows per batch function call: the unit of retry and of progress. Large enough that the
#: embedder's length sorting and thread pool work well, small enough to retry cheaply.
DEFAULT_ROWS_PER_BATCH = 256


class CountMismatchError(DataError):
    """The rows written differ from the rows read (lost, repeated or unknown ids)."""


@dataclass(frozen=True)
class RunResult:
    """What a run wrote and how long embedding took (engine start-up included)."""

    out: Path
    engine: str
    count: int
    dim: int
    seconds: float
    retried_rows: int
    manifest: dict[str, Any]

    @property
    def docs_per_s(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else float("inf")


def embed_corpus(
    input: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    bundle: str | os.PathLike[str],
    variant: str = "fp32",
    engine: str = "local",
    fields: Fields = DEFAULT_FIELDS,
    batch_size: int = 32,
    rows_per_batch: int = DEFAULT_ROWS_PER_BATCH,
    rows_per_file: int = DEFAULT_ROWS_PER_FILE,
    retries: int = 2,
    num_cpus: int | None = None,
    actors: int | None = None,
    ray_address: str | None = None,
    force: bool = False,
    progress: bool = True,
    log_to_driver: bool = False,
) -> RunResult:
    """Embed every row of ``input`` (a JSONL/Parquet file or a directory of them) into ``out``.

    ``engine`` is ``"local"`` (this process, ``num_cpus`` ONNX Runtime threads) or
    ``"ray"`` (``actors`` actors on the cluster at ``ray_address``, or on a local Ray
    with ``num_cpus`` CPUs). Rows may be texts, images or text+image pairs (see
    :mod:`umr.runtime.corpus_embed.reader`); images need a multimodal bundle. Raises
    ``InputValueError`` for bad input rows or options (or images for a text-only bundle)
    before anything is written, ``EmbedBatchError`` for a batch that failed all its
    attempts and :class:`CountMismatchError` when output and input disagree; in every
    failure no manifest is written.
    """
    _check_options(engine, batch_size, rows_per_batch, retries, num_cpus, actors)
    bundle_manifest = read_manifest(bundle)
    chosen = bundle_manifest.variant(variant)  # unknown variant -> error now
    corpus = scan(input, fields)
    _check_images_embeddable(corpus, bundle_manifest)
    _check_out_not_in_input(Path(out), corpus)
    root = prepare_out_dir(out, force=force)
    config = EmbedConfig(
        bundle=str(Path(bundle).resolve()),
        variant=variant,
        threads=num_cpus if engine == "local" else None,
        batch_size=batch_size,
        retries=retries,
        faults=faults_from_env(),
    )
    writer = VectorWriter(root, bundle_manifest.dim, rows_per_file)
    start = time.perf_counter()
    try:
        tables = _engine_tables(
            engine, corpus, config, rows_per_batch, progress,
            address=ray_address, num_cpus=num_cpus, actors=actors, log_to_driver=log_to_driver,
        )  # fmt: skip
        retried = _drain(tables, writer, corpus)
        files = writer.close()
    except BaseException:
        writer.abort()
        raise
    seconds = time.perf_counter() - start
    image_file = getattr(chosen, "image_file", None)
    image_graph = {"image_model_sha256": bundle_manifest.files[image_file]} if image_file else {}
    manifest = write_manifest(
        root,
        dim=bundle_manifest.dim,
        count=writer.count,
        bundle=bundle_manifest.name,
        model_sha256=bundle_manifest.files[chosen.file],
        variant=variant,
        files=files,
        input=corpus.describe(),
        engine=engine,
        **image_graph,
    )
    if retried:
        log.warning("%d rows were embedded only after their batch was retried", retried)
    return RunResult(root, engine, writer.count, bundle_manifest.dim, seconds, retried, manifest)


def _check_options(
    engine: str,
    batch_size: int,
    rows_per_batch: int,
    retries: int,
    num_cpus: int | None,
    actors: int | None,
) -> None:
    if engine not in ENGINES:
        raise InputValueError(f"engine {engine!r} is not one of {', '.join(ENGINES)}")
    for name, value, low in (
        ("batch_size", batch_size, 1),
        ("rows_per_batch", rows_per_batch, 1),
        ("retries", retries, 0),
        ("num_cpus", num_cpus, 1),
        ("actors", actors, 1),
    ):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise InputValueError(f"{name} must be an integer, got {value!r}")
        if value is not None and value < low:
            raise InputValueError(f"{name} must be >= {low}, got {value}")


def _check_images_embeddable(corpus: Corpus, manifest: Any) -> None:
    """Rows with images need a bundle with the image graph; say so before any work."""
    if not corpus.image_count or getattr(manifest, "image", None) is not None:
        return
    first = next(f for f in corpus.files if f.images)
    modalities = ", ".join(getattr(manifest, "modalities", None) or ("text",))
    raise InputValueError(
        f"{corpus.image_count} rows carry an image (the first in {first.path}), but bundle "
        f"{manifest.name!r} has no image graph (modalities: {modalities}); embed them with "
        "a multimodal bundle"
    )


def _check_out_not_in_input(out: Path, corpus: Corpus) -> None:
    # Parts written inside an input directory would be read as input by the next run.
    target = out.resolve()
    if corpus.root.is_dir() and (target == corpus.root or corpus.root in target.parents):
        raise InputValueError(f"--out {out} is inside the input directory {corpus.root}")


def _engine_tables(
    engine: str,
    corpus: Corpus,
    config: EmbedConfig,
    rows_per_batch: int,
    progress: bool,
    **ray_options: Any,
) -> Iterable[pa.Table]:
    if engine == "local":
        from umr.runtime.corpus_embed import local

        return local.embed_tables(corpus, config, rows_per_batch=rows_per_batch, progress=progress)
    from umr.runtime.corpus_embed import ray_engine  # imports ray: only for this engine

    return ray_engine.embed_tables(
        corpus, config, rows_per_batch=rows_per_batch, progress=progress, **ray_options
    )


def _drain(tables: Iterable[pa.Table], writer: VectorWriter, corpus: Corpus) -> int:
    """Write every table; check each id arrives once and the total equals the input.

    Returns how many rows needed a retry of their batch.
    """
    seen: set[tuple[str, str]] = set()
    retried = 0
    for table in tables:
        keys = zip(table["id_type"].to_pylist(), table["id"].to_pylist(), strict=True)
        before = len(seen)
        seen.update(keys)
        if len(seen) - before != table.num_rows:
            raise CountMismatchError("the engine returned an id twice; no manifest written")
        retried += sum(1 for a in table[ATTEMPTS].to_pylist() if a > 1)
        writer.write(table)
    if writer.count != corpus.count:
        raise CountMismatchError(
            f"read {corpus.count} rows but embedded {writer.count}; no manifest written"
        )
    return retried
