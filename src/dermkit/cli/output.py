"""What a command prints: one JSON document with ``--json``, else its text, through :func:`emit`.

``--json`` is one flag, accepted before the command (``dermkit --json data stats T``) or after it
(``dermkit data stats T --json``): both set ``args.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

JSON_HELP = "print one JSON document instead of text"


def print_json(document: Any) -> None:
    """``--json`` output: exactly one JSON document on stdout."""
    json.dump(document, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def emit(args: argparse.Namespace, document: Any, text: str | Callable[[], str | None] | None = None) -> None:
    """Print ``document`` as JSON under ``--json`` (or when the command has no text form), else
    ``text``; a callable text is only built in text mode and may print for itself (returning None)."""
    if text is None or args.json:
        print_json(document)
        return
    shown = text() if callable(text) else text
    if shown is not None:
        print(shown)


def add_global_json(parser: argparse.ArgumentParser) -> None:
    """The top-level ``--json``; its default is the only one, so a command's own flag can only turn it on."""
    parser.add_argument("--json", action="store_true", help=JSON_HELP)


def add_json(parser: argparse.ArgumentParser) -> None:
    """``--json`` after the command too; SUPPRESS keeps an absent flag from undoing ``dermkit --json CMD``."""
    parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help=JSON_HELP)
