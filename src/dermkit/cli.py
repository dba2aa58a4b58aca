"""The one command-line entry point. Thin: parse arguments, call the packages, print results.

Each area adds its sub-commands in its own ``_add_*`` function; heavy packages are imported
inside the command functions so ``dermkit --help`` stays instant.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dermkit import __version__
from dermkit.core.errors import DermkitError


def print_json(document: Any) -> None:
    """``--json`` output: exactly one JSON document on stdout."""
    json.dump(document, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def _key_values(pairs: Sequence[str], flag: str) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise DermkitError(f"{flag} expects KEY=VALUE, got {pair!r}")
        out[key] = value
    return out


# -- data ---------------------------------------------------------------------------------------

def _cmd_data_import(args: argparse.Namespace) -> int:
    from dermkit.data.importers import run_import

    result = run_import(
        args.source,
        args.path,
        args.out,
        on_error=args.on_error,
        options=_key_values(args.option, "--option"),
        check_images=not args.no_image_check,
    )
    summary = {"out": str(result.out_dir), "cases": result.cases, "rejected": len(result.problems)}
    if args.json:
        print_json(summary)
    else:
        print(f"imported {result.cases} cases into {result.out_dir}"
              + (f" ({len(result.problems)} rejected, see import_report.json)" if result.problems else ""))
    return 0


def _add_data(sub: argparse._SubParsersAction) -> None:
    from dermkit.data.importers import IMPORTERS

    data = sub.add_parser("data", help="import, split, check and describe case tables")
    data_sub = data.add_subparsers(dest="data_command", required=True)

    imp = data_sub.add_parser("import", help="import a source dataset into a case table")
    imp.add_argument("source", choices=sorted(IMPORTERS), help="source layout")
    imp.add_argument("path", type=Path, help="the source's folder or file")
    imp.add_argument("--out", type=Path, required=True, help="output case-table directory")
    imp.add_argument("--on-error", choices=["raise", "skip"], default="raise",
                     help="stop at the first bad row (default) or skip and report bad rows")
    imp.add_argument("--option", "-o", action="append", default=[], metavar="KEY=VALUE",
                     help="importer option, e.g. images=DIR or, for csv, column mappings")
    imp.add_argument("--no-image-check", action="store_true", help="skip decoding every image")
    imp.add_argument("--json", action="store_true", help="print a JSON summary")
    imp.set_defaults(func=_cmd_data_import)


# -- entry point --------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dermkit", description="Dermatology AI toolkit.")
    parser.add_argument("--version", action="version", version=f"dermkit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_data(sub)
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


if __name__ == "__main__":
    sys.exit(main())
