"""The ``umr`` command: dispatch to one small module per command.

Each command module exposes ``add_parser(subparsers)`` and ``run(args) -> int``; heavy
imports (torch for export, sentence-transformers for benchmarks) happen inside ``run``
so ``umr --help`` and the serving commands stay light.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from typing import NoReturn

from umr.runtime.cli import (
    bench_cmd,
    data_cmd,
    demo_cmd,
    embed_corpus_cmd,
    eval_cmd,
    export_cmd,
    index_cmd,
    info_cmd,
    search_cmd,
    serve_cmd,
    train_cmd,
)

from umr import __version__
from umr.errors import UmrError

_COMMANDS = (
    export_cmd,
    info_cmd,
    index_cmd,
    search_cmd,
    serve_cmd,
    embed_corpus_cmd,
    data_cmd,
    train_cmd,
    eval_cmd,
    bench_cmd,
    demo_cmd,
)

_DESCRIPTION = """\
umr: embed texts with an exported ONNX bundle and search them with a crash-safe HNSW index.

Typical flow:
  umr export --out BUNDLE                      # default model -> bundle (needs umr[export])
  umr info BUNDLE                              # what the bundle holds, parity figures
  umr index build --bundle BUNDLE --input docs.jsonl --out INDEX
  umr search --bundle BUNDLE --index INDEX "how do I catch an exception"
  umr bench text --bundle BUNDLE               # side by side with sentence-transformers
  umr demo --bundle BUNDLE                     # index the Python reference and query it
"""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line with a pointer to --help."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (exposed for tests and docs)."""
    parser = _Parser(
        prog="umr", description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"umr {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in _COMMANDS:
        module.add_parser(sub)
    return parser


def _fail(message: str) -> int:
    print(f"umr: error: {message}", file=sys.stderr)
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``umr`` console script; returns the process exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="umr: %(message)s",
    )
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        return _fail("interrupted")
    except (UmrError, OSError, ValueError, TypeError, KeyError, json.JSONDecodeError) as exc:
        # One line, no traceback: the message names the bad item. -v shows the traceback.
        if args.verbose:
            logging.exception("details")
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return _fail(text)


if __name__ == "__main__":
    sys.exit(main())
