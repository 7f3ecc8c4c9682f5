"""Training data: the JSONL record format and the emoji/icon dataset builder (torch-free)."""
