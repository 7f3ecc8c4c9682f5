"""``umr bench``: benchmarks side by side with the tools users compare us with (``umr[bench]``)."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="run benchmarks (needs umr[bench])",
        description="Benchmarks measured side by side in one run; see `umr bench text --help`, "
        "`umr bench image --help`, `umr bench fused --help`, `umr bench serve --help` and "
        "`umr bench gpu --help`.",
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
    _add_multimodal(bsub)
    _add_serve(bsub)
    _add_gpu(bsub)


def _add_multimodal(bsub: argparse._SubParsersAction) -> None:
    # Only the stdlib at import; the engines run in worker processes (torch in its own).
    from umr.bench import mm_cli

    helps = {
        "image": "image embedding throughput + batch-1 latency vs the PyTorch model",
        "fused": "text+image embedding + end-to-end fused query vs the PyTorch model",
    }
    for kind in mm_cli.KINDS:
        p = bsub.add_parser(
            kind, help=helps[kind], formatter_class=argparse.RawDescriptionHelpFormatter
        )
        mm_cli.configure_parser(p, kind)
        p.set_defaults(run=mm_cli.run)


def _add_serve(bsub: argparse._SubParsersAction) -> None:
    # Only the stdlib at import; the server runs in a child process (needs umr[serve]).
    from umr.bench import serve_cli

    s = bsub.add_parser(
        "serve",
        help="HTTP server throughput/latency, micro-batching on vs off, vs offline batch",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve_cli.configure_parser(s)
    s.set_defaults(run=serve_cli.run)


def _add_gpu(bsub: argparse._SubParsersAction) -> None:
    # Only the stdlib at import; onnxruntime-gpu, torch and triton are read when it runs.
    from umr.bench import gpu_cli

    g = bsub.add_parser("gpu", help="a bundle on the CUDA EP vs the CPU EP, Triton pooling")
    gpu_cli.configure_parser(g)
    g.set_defaults(run=gpu_cli.run)
