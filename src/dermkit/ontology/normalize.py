"""Term normalisation shared by lookups and caption tagging: case- and punctuation-insensitive."""

from __future__ import annotations

import re
import unicodedata

_APOSTROPHE = re.compile(r"['\u2019]")
_NON_WORD = re.compile(r"[^0-9a-z]+")


def normalize_term(text: str) -> str:
    """Lower-case, strip accents and apostrophes, turn every run of punctuation/space into one space.

    ``"Basal-Cell  Carcinoma"`` and ``"basal cell carcinoma."`` both become
    ``"basal cell carcinoma"``, and ``"Grover's disease"`` and ``"Grovers disease"`` both become
    ``"grovers disease"``, so synonyms match however a source spells them.
    """
    decomposed = unicodedata.normalize("NFKD", _APOSTROPHE.sub("", text))
    ascii_only = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()
    return _NON_WORD.sub(" ", ascii_only).strip()
