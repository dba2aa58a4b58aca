"""Pieces several command areas share: the ``--tta`` help, the split flags and KEY=VALUE parsing."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from dermkit.core.errors import DermkitError

TTA_HELP = ("test-time augmentation: the mean over N views of each image (2: + mirror; 4: + half turn; "
            "8: every quarter turn, mirrored or not)")


def add_split_arguments(parser: argparse.ArgumentParser) -> None:
    """``--by``, ``--val``, ``--test`` and ``--seed`` of a leak-free split (``data split``, ``curate dedup --split``).

    Literal choices and defaults (mirroring dermkit.data.splits) keep scipy out of ``--help``.
    """
    parser.add_argument("--by", choices=["patient", "lesion", "case"], default="patient",
                        help="keep each patient (falling back to lesion, then case), lesion or case in one split")
    parser.add_argument("--val", type=float, default=0.15, help="share of cases for validation (default 0.15)")
    parser.add_argument("--test", type=float, default=0.15, help="share of cases for testing (default 0.15)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same split)")


def key_values(pairs: Sequence[str], flag: str) -> dict[str, str]:
    """``KEY=VALUE`` arguments of a repeatable flag as a dict; a malformed one names the flag."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise DermkitError(f"{flag} expects KEY=VALUE, got {pair!r}")
        out[key] = value
    return out
