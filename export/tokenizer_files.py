"""Copy the source's tokenizer files into a bundle, set to truncate at ``max_seq_length``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from umr.errors import ExportError

TOKENIZER_FILE = "tokenizer.json"
# Companions copied as present; the runtime only needs tokenizer.json, other tools want the rest.
_COMPANIONS = (
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "sentencepiece.bpe.model",
    "spiece.model",
)


def write_tokenizer_files(source_dir: Path, bundle_dir: Path, max_seq_length: int) -> list[str]:
    """Write tokenizer.json (truncation at ``max_seq_length``, no padding) and its companions.

    Returns the names written. The source's own tokenizer.json often pads to a fixed length
    or truncates at a different one (all-MiniLM-L6-v2 ships 128): both are replaced, so any
    consumer of the bundle sees the limit the model was trained with.
    """
    from tokenizers import Tokenizer

    src = source_dir / TOKENIZER_FILE
    try:
        tok = Tokenizer.from_file(str(src))
    except Exception as exc:  # tokenizers raises a bare Exception on malformed files
        raise ExportError(f"{src}: cannot load as a fast tokenizer ({exc})") from None
    tok.enable_truncation(max_length=max_seq_length)
    tok.no_padding()
    tok.save(str(bundle_dir / TOKENIZER_FILE))
    written = [TOKENIZER_FILE]
    for name in _COMPANIONS:
        if (source_dir / name).is_file():
            shutil.copyfile(source_dir / name, bundle_dir / name)
            written.append(name)
    _set_model_max_length(bundle_dir / "tokenizer_config.json", max_seq_length)
    return written


def _set_model_max_length(path: Path, max_seq_length: int) -> None:
    """Make tokenizer_config.json agree with tokenizer.json (transformers reads this one)."""
    if not path.is_file():
        return
    cfg = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(cfg, dict):
        cfg["model_max_length"] = max_seq_length
        path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
