"""``umr embed-corpus``: placeholder until its owner fills it in."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("embed-corpus", help="(not implemented yet)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    raise NotImplementedError("umr embed-corpus is not implemented yet")
