"""Recall@k evaluation over M-BEIR style tasks."""
