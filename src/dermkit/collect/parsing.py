"""Numbers and ids from forms and paths: ASCII digits only, bounded before ``int()``.

``str.isdigit`` accepts superscripts (``²``) and other scripts' digits (``٥``), which ``int()``
then refuses or reads; and an id over 64 bits overflows the database driver. One parser for both.
"""

from __future__ import annotations

from dermkit.core.errors import InputError

MAX_ID = 2**63 - 1  # the largest key a 64-bit signed column holds
_MAX_DIGITS = len(str(MAX_ID))


def ascii_digits(text: str) -> int | None:
    """``text`` as a non-negative integer when it is 1–19 ASCII digits; otherwise None."""
    if not text or len(text) > _MAX_DIGITS or not text.isascii() or not text.isdigit():
        return None
    return int(text)


def whole_number(text: str, field: str) -> int:
    """A form field's whole number, or :class:`InputError` naming ``field``."""
    value = ascii_digits(text)
    if value is None:
        shown = text if len(text) <= 20 else text[:20] + "…"
        raise InputError(f"{shown!r} is not a whole number written with the digits 0–9", field=field)
    return value


def row_id(text: str) -> int | None:
    """A path's database id, or None (the caller answers 404) when no row can have it."""
    value = ascii_digits(text)
    return value if value is not None and 1 <= value <= MAX_ID else None
