"""Parsers of a source's cell values: empty means missing; anything else must parse or the row is rejected."""

from __future__ import annotations

import ast
import math
import re
from typing import Any

from dermkit.core.errors import InputError
from dermkit.data.importers.base import ImportContext, Where

MISSING_TOKENS = frozenset({"", "nan", "na", "n/a", "none", "null", "unknown", "unk", "-1"})


def is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip().lower() in MISSING_TOKENS


ROMAN_NUMERALS = {"i": 1, "ii": 2, "iii": 3, "iv": 4, "v": 5, "vi": 6}
FITZPATRICK_PREFIX = re.compile(r"^(?:(?:fitzpatrick|skin|type|fst)[\s_-]*)+")


def parse_fitzpatrick(value: Any, where: Where, field_name: str) -> int | None:
    """Fitzpatrick type as 1–6, I–VI, ``FST3`` or ``type III``."""
    if is_missing(value):
        return None
    text = FITZPATRICK_PREFIX.sub("", str(value).strip().lower())
    if text in ROMAN_NUMERALS:
        return ROMAN_NUMERALS[text]
    try:
        return parse_int(text, where, field_name, 1, 6)
    except InputError:
        raise where.error(field_name, f"{value!r} is not a Fitzpatrick type (1–6, I–VI, FST1–FST6)") from None


def parse_float(value: Any, where: Where, field_name: str, low: float | None = None, high: float | None = None) -> float | None:
    if is_missing(value):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise where.error(field_name, f"{value!r} is not a number") from exc
    if math.isnan(number):
        return None
    if (low is not None and number < low) or (high is not None and number > high):
        raise where.error(field_name, f"{number} is outside {low}–{high}")
    return number


def parse_int(value: Any, where: Where, field_name: str, low: int | None = None, high: int | None = None) -> int | None:
    number = parse_float(value, where, field_name, low, high)
    if number is None:
        return None
    if number != int(number):
        raise where.error(field_name, f"{value!r} is not a whole number")
    return int(number)


_TRUE = {"true", "yes", "y", "1", "t"}
_FALSE = {"false", "no", "n", "0", "f"}


def parse_bool(value: Any, where: Where, field_name: str) -> bool | None:
    if is_missing(value):
        return None
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise where.error(field_name, f"{value!r} is not a yes/no value")


def parse_literal(value: Any, where: Where, field_name: str, expected: type | tuple[type, ...] = (list, dict)) -> Any:
    """Parse a Python-literal string such as ``"['a', 'b']"`` (SCIN's list and dict columns)."""
    if is_missing(value):
        return None
    try:
        parsed = ast.literal_eval(str(value))
    except (ValueError, SyntaxError) as exc:
        raise where.error(field_name, f"malformed literal {str(value)[:80]!r}") from exc
    if not isinstance(parsed, expected):
        raise where.error(field_name, f"expected {expected}, got {type(parsed).__name__}")
    return parsed


SEX_WORDS = {
    "female": "female", "f": "female", "woman": "female", "girl": "female",
    "male": "male", "m": "male", "man": "male", "boy": "male",
    "other": "other", "other_or_unspecified": "other", "intersex": "other", "non_binary": "other",
}


def parse_sex(value: Any, where: Where, field_name: str) -> str | None:
    if is_missing(value):
        return None
    key = str(value).strip().lower().replace(" ", "_")
    if key not in SEX_WORDS:
        raise where.error(field_name, f"{value!r} is not a recognised sex")
    return SEX_WORDS[key]


def parse_body_site(value: Any, context: ImportContext, where: Where, field_name: str) -> str | None:
    if is_missing(value):
        return None
    node = context.ontology.body_sites.find(str(value))
    if node is None:
        suggestions = context.ontology.body_sites.suggest(str(value))
        hint = f" (did you mean {', '.join(suggestions)}?)" if suggestions else ""
        raise where.error(field_name, f"unknown body site {value!r}{hint}")
    return node.id
