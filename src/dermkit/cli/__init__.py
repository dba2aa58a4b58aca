"""The one command-line entry point. Thin: parse arguments, call the packages, print results.

Each area adds its sub-commands in its own module's ``register``; heavy packages are imported
inside the command functions (and the training commands' flags when those commands run), so
``dermkit --help`` stays instant.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from dermkit import __version__
from dermkit.cli import (
    collect,
    curate,
    data,
    demo,
    evaluate,
    models,
    ontology,
    predict,
    serve,
    train,
)
from dermkit.cli.output import add_global_json, emit, print_json
from dermkit.core.errors import DermkitError

__all__ = ["build_parser", "emit", "main", "print_json"]

AREAS = (data, demo, train, predict, ontology, models, evaluate, serve, collect, curate)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dermkit", description="Dermatology AI toolkit.")
    parser.add_argument("--version", action="version", version=f"dermkit {__version__}")
    add_global_json(parser)
    sub = parser.add_subparsers(dest="command", required=True)
    for area in AREAS:
        area.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except DermkitError as error:
        print(f"dermkit: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dermkit: interrupted", file=sys.stderr)
        return 130
