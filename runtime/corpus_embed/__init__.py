"""Batch-embed a corpus into Parquet vectors, in one process or on Ray."""
