"""``umr bench``: benchmarks side by side with the tools users compare us with (``umr[bench]``)."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="run benchmarks (needs umr[bench])",
        description="Benchmarks measured side by side in one run; see `umr bench text --help`.",
    )
    bsub = p.add_subparsers(dest="bench_command", metavar="BENCH", required=True)
    t = bsub.add_parser(
        "text",
        help="text embedding + index benchmark vs sentence-transformers",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    try:
        from umr.bench.text_cli import configure_parser, run
    except ImportError as exc:  # the bench extra is optional; say what to install
        missing = exc.name

        def run(args: argparse.Namespace) -> int:
            raise ImportError(f"umr bench needs {missing}: pip install 'umr[bench]'")

        t.description = "Needs the bench extra: pip install 'umr[bench]'."
    else:
        configure_parser(t)
    t.set_defaults(run=run)
