"""Pieces several command areas share: the ``--tta`` help and KEY=VALUE parsing."""

from __future__ import annotations

from collections.abc import Sequence

from dermkit.core.errors import DermkitError

TTA_HELP = ("test-time augmentation: the mean over N views of each image (2: + mirror; 4: + half turn; "
            "8: every quarter turn, mirrored or not)")


def key_values(pairs: Sequence[str], flag: str) -> dict[str, str]:
    """``KEY=VALUE`` arguments of a repeatable flag as a dict; a malformed one names the flag."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise DermkitError(f"{flag} expects KEY=VALUE, got {pair!r}")
        out[key] = value
    return out
