"""The local engine: the shared reader, batch function and writer in this one process."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
from umr.runtime.corpus_embed.pipeline import BatchEmbedder, EmbedConfig
from umr.runtime.corpus_embed.reader import Corpus, read_docs


def embed_tables(
    corpus: Corpus, config: EmbedConfig, *, rows_per_batch: int, progress: bool = True
) -> Iterator[pa.Table]:
    """Vector tables for every row of ``corpus``, in input order, with a tqdm bar.

    One :class:`BatchEmbedder` (one ONNX Runtime session using ``config.threads``
    threads) embeds batches of ``rows_per_batch`` rows; each batch is retried by the
    batch function itself.
    """
    from tqdm import tqdm

    embed = BatchEmbedder(config)
    with tqdm(total=corpus.count, unit="doc", desc="embedding", disable=not progress) as bar:
        for file in corpus.files:
            for docs in read_docs(file, corpus.fields, rows_per_batch):
                table = embed(docs)
                bar.update(table.num_rows)
                yield table
