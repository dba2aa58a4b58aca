"""Caption tagging for a million captions: one Aho-Corasick automaton, several processes.

The ontology tagger (:mod:`dermkit.ontology.tagger`) compiles its vocabulary into one regular
expression; Python's regex engine still tries the trie at every character, which costs ~0.3 ms
per caption, i.e. minutes per million. Here the same terms (the tagger's own term table, with
its spelling and plural variants, so both agree on what a term is) go into a pyahocorasick
automaton that scans a caption once in C. Keys carry a space on each side and captions are
normalised to single-spaced words, so every hit is a whole-word match; overlapping hits are then
resolved leftmost-longest, as the regex does ("basal cell carcinoma" wins over "carcinoma").

Negation follows the ontology tagger exactly (a cue negates the terms after it up to the end of
its clause; punctuation and contrast words end the clause), and skin types reuse its pattern.
Age and sex, which the ontology tagger does not read, are added here: "45-year-old", "aged 45",
"in her forties"; woman/man/girl/boy/female/male and pronouns.

Output is a sidecar table (``caption_tags.parquet`` beside ``cases.parquet``), one row per case:
the case table's own ``concepts``/``body_site``/``symptoms`` hold what the source recorded, and a
tagger's guesses must not silently overwrite them (``body_site`` is also single-valued, while a
caption can name several sites). Consumers join on ``case_id``.
"""

from __future__ import annotations

import multiprocessing
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dermkit.core.atomic import atomic_path
from dermkit.core.optional import require
from dermkit.data.table import resolve_table_file
from dermkit.ontology import Ontology, default_ontology
from dermkit.ontology.tagger import (  # shared with the ontology tagger on purpose: one vocabulary
    NEGATION_CUES,
    SCOPE_BREAKERS,
    SKIN_TYPES,
    VOCABULARIES,
    skin_type_values,
    term_targets,
)

TAGS_FILE = "caption_tags.parquet"

# What an automaton key means. Terms, cues and breakers compete for text (leftmost-longest);
# triggers and sex words only mark the caption.
_TERM, _CUE, _BREAKER, _CLAUSE, _SKIN_TRIGGER, _FEMALE, _MALE = range(7)
_CLAUSE_MARK = "|"
_SKIN_TRIGGERS = ("fitzpatrick", "phototype", "skin type", "skin phototype", "fst", "monk", "mst")
_FEMALE_WORDS = ("woman", "women", "female", "girl", "lady", "she", "her", "mother", "daughter", "wife")
_MALE_WORDS = ("man", "men", "male", "boy", "gentleman", "he", "his", "him", "father", "son", "husband")

# ASCII bytes → tagger text: clause punctuation becomes a clause mark (spaced afterwards),
# apostrophes vanish, every other non-alphanumeric becomes a space (the ontology's
# normalize_term, plus clauses). bytes.translate runs in C at memory speed.
_BYTE_TABLE = bytes(
    code if code < 128 and chr(code).isalnum() else ord(_CLAUSE_MARK) if chr(code) in ".,;!?()[]{}\n" else ord(" ")
    for code in range(256)
).lower()
_NON_ASCII = re.compile(r"[^\x00-\x7f]+")

# One caption's tags in TAG_SCHEMA order: the CaptionTags fields up to ``sex``, then the negated ids
# of each vocabulary (VOCABULARIES order). Spelled out so the type checker knows where ``negated`` starts.
_Ids = tuple[str, ...]
TagRow = tuple[_Ids, _Ids, _Ids, _Ids, _Ids, tuple[int, ...], tuple[int, ...], float | None, str | None,
               _Ids, _Ids, _Ids, _Ids]

_SKIN_PATTERN = re.compile(rf"\b(?:{SKIN_TYPES})\b")
_DECADES = {"twenties": 20, "thirties": 30, "forties": 40, "fifties": 50, "sixties": 60,
            "seventies": 70, "eighties": 80, "nineties": 90}
_AGE_WORDS = ("old ", "age", "yo ", "y o ", "ties ", "0s ", "0 s ")
_AGE_PATTERN = re.compile(
    r"\b(?P<years>\d{1,3}) (?:years?|yrs?|y) (?:old|of age)\b"
    r"|\b(?P<yo>\d{1,3}) ?(?:yo|y o|yr old)\b"
    r"|\baged? (?P<aged>\d{1,3})\b"
    r"|\b(?P<months>\d{1,2}) months? old\b"
    r"|\bin (?:his|her|their) (?:(?P<decade>\d)0 ?s|(?P<decade_word>" + "|".join(_DECADES) + r"))\b"
)


@dataclass(frozen=True)
class CaptionTags:
    """What one caption mentions, as ontology ids.

    ``conditions`` are the most specific ids found; ``condition_ancestors`` the ids they imply
    (every ancestor, nearest first, without repeats). ``negated`` maps a vocabulary to the ids
    mentioned under a negation cue. ``age`` is in years, ``sex`` female/male, both None when the
    caption does not say (or says both).
    """

    conditions: tuple[str, ...] = ()
    condition_ancestors: tuple[str, ...] = ()
    concepts: tuple[str, ...] = ()
    body_sites: tuple[str, ...] = ()
    symptoms: tuple[str, ...] = ()
    fitzpatrick: tuple[int, ...] = ()
    monk: tuple[int, ...] = ()
    age: float | None = None
    sex: str | None = None
    negated: dict[str, tuple[str, ...]] = field(default_factory=dict)


def normalize_caption(text: str | bytes | None) -> str:
    """Caption → single-spaced lower-case words with ``|`` at clause ends, padded with spaces.

    Bytes are decoded as UTF-8 with replacement (Derm1M scrapes hold stray bytes); accents are
    stripped as in :func:`dermkit.ontology.normalize_term`, other non-ASCII becomes a space.
    """
    if text is None:
        return " "
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    if not text.isascii():
        text = text.replace("\u2019", "'")
        decomposed = unicodedata.normalize("NFKD", text)
        text = _NON_ASCII.sub(" ", "".join(ch for ch in decomposed if not unicodedata.combining(ch)))
    mapped = text.encode("ascii").translate(_BYTE_TABLE, b"'").replace(b"|", b" | ").decode("ascii")
    return " " + " ".join(mapped.split()) + " "


class CaptionTagger:
    """The compiled automaton of one ontology (built once; forked workers inherit it)."""

    def __init__(self, ontology: Ontology | None = None) -> None:
        ahocorasick = require("ahocorasick", "curate", "fast caption tagging")
        self._ontology = ontology or default_ontology()
        conditions = self._ontology.conditions
        self._ancestors = {node.id: tuple(a.id for a in conditions.ancestors(node.id)) for node in conditions}
        keys: dict[str, tuple[int, Any]] = {}
        for word in _MALE_WORDS:
            keys[word] = (_MALE, None)
        for word in _FEMALE_WORDS:
            keys[word] = (_FEMALE, None)
        for word in _SKIN_TRIGGERS:
            keys[word] = (_SKIN_TRIGGER, None)
        for cue in SCOPE_BREAKERS:
            keys[cue] = (_BREAKER, None)
        for cue in NEGATION_CUES:
            keys[cue] = (_CUE, None)
        position = {name: index for index, name in enumerate(VOCABULARIES)}
        for term, owners in term_targets(self._ontology).items():  # terms win, as in the tagger
            keys[term] = (_TERM, tuple((position[vocabulary], node_id) for vocabulary, node_id in owners))
        keys[_CLAUSE_MARK] = (_CLAUSE, None)
        automaton = ahocorasick.Automaton()
        for key, (kind, payload) in keys.items():
            automaton.add_word(f" {key} ", (len(key) + 2, kind, payload))
        automaton.make_automaton()
        self._automaton = automaton

    def tag(self, text: str | bytes | None) -> CaptionTags:
        """Tag one caption (``None``, empty and undecodable captions give empty tags)."""
        row = self.row(text)
        negated = dict(zip(VOCABULARIES, row[9:]))
        return CaptionTags(*row[:9], negated={name: ids for name, ids in negated.items() if ids})

    def row(self, text: str | bytes | None) -> TagRow:
        """The tags of one caption as a tuple in :data:`TAG_SCHEMA` order (the bulk path: no objects)."""
        padded = normalize_caption(text)
        hits = []
        female = male = skin = False
        for end, (length, kind, payload) in self._automaton.iter(padded):
            if kind == _FEMALE:
                female = True
            elif kind == _MALE:
                male = True
            elif kind == _SKIN_TRIGGER:
                skin = True
            else:
                hits.append((end - length + 1, -length, kind, payload))
        hits.sort()  # (start, -length) is unique per hit, so payloads are never compared
        found: list[dict[str, None]] = [{}, {}, {}, {}]  # per vocabulary, in VOCABULARIES order
        negated: list[dict[str, None]] = [{}, {}, {}, {}]
        negating = False
        last_end = 0
        for start, negative_length, kind, payload in hits:
            if start < last_end:  # overlaps the previous accepted key (sharing its space is fine)
                continue
            last_end = start - negative_length - 1
            if kind == _TERM:
                bucket = negated if negating else found
                for vocabulary, node_id in payload:
                    bucket[vocabulary][node_id] = None
            else:
                negating = kind == _CUE
        fitzpatrick: tuple[int, ...] = ()
        monk: tuple[int, ...] = ()
        if skin:
            fitzpatrick, monk = _skin_types(padded)
        conditions = self._most_specific(found[0])
        implied = tuple(dict.fromkeys(a for node_id in conditions for a in self._ancestors[node_id]))
        sex = "female" if female and not male else "male" if male and not female else None
        return (conditions, implied, tuple(found[1]), tuple(found[2]), tuple(found[3]), fitzpatrick, monk,
                _age(padded), sex, self._most_specific(negated[0]), tuple(negated[1]), tuple(negated[2]),
                tuple(negated[3]))

    def _most_specific(self, ids: Iterable[str]) -> tuple[str, ...]:
        """The ontology tagger's rule (drop ancestors of other ids), with ancestors precomputed."""
        ordered = list(ids)
        if len(ordered) < 2:
            return tuple(ordered)
        ancestors = {a for node_id in ordered for a in self._ancestors[node_id]}
        return tuple(node_id for node_id in ordered if node_id not in ancestors)


def _skin_types(padded: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Fitzpatrick types (1–6) and Monk tones (1–10) the caption states, each sorted."""
    fitzpatrick: set[int] = set()
    monk: set[int] = set()
    for match in _SKIN_PATTERN.finditer(padded):
        target = fitzpatrick if match["fitzpatrick"] else monk
        target.update(skin_type_values(match["fitzpatrick"] or match["monk"]))
    return tuple(sorted(v for v in fitzpatrick if 1 <= v <= 6)), tuple(sorted(v for v in monk if 1 <= v <= 10))


def _age(padded: str) -> float | None:
    """The first age the caption states, in years (None when absent or outside 0–120)."""
    if not any(word in padded for word in _AGE_WORDS):  # substring tests are ~10x cheaper than the regex
        return None
    match = _AGE_PATTERN.search(padded)
    if match is None:
        return None
    if match["months"]:
        return round(int(match["months"]) / 12, 2)
    if match["decade"] or match["decade_word"]:
        decade = int(match["decade"]) * 10 if match["decade"] else _DECADES[match["decade_word"]]
        return decade + 5.0
    years = float(match["years"] or match["yo"] or match["aged"])
    return years if years <= 120 else None


# -- many captions --------------------------------------------------------------------------------

TAG_SCHEMA = pa.schema([
    ("conditions", pa.list_(pa.string())),
    ("condition_ancestors", pa.list_(pa.string())),
    ("concepts", pa.list_(pa.string())),
    ("body_sites", pa.list_(pa.string())),
    ("symptoms", pa.list_(pa.string())),
    ("fitzpatrick", pa.list_(pa.int8())),
    ("monk", pa.list_(pa.int8())),
    ("age", pa.float32()),
    ("sex", pa.string()),
    *((f"negated_{name}", pa.list_(pa.string())) for name in VOCABULARIES),
])

# Set in the parent before forking, so workers share the automaton and captions without pickling.
_SHARED: dict[str, Any] = {}


def _tag_range(bounds: tuple[int, int]) -> pa.Table:
    """One chunk of captions as a :data:`TAG_SCHEMA` table (runs in a forked worker)."""
    tagger: CaptionTagger = _SHARED["tagger"]
    captions: Sequence[Any] = _SHARED["captions"]
    rows = [tagger.row(captions[i]) for i in range(*bounds)]
    columns = list(zip(*rows)) if rows else [()] * len(TAG_SCHEMA)
    return pa.Table.from_arrays([pa.array(c, type=f.type) for c, f in zip(columns, TAG_SCHEMA)], schema=TAG_SCHEMA)


def tag_captions(
    captions: Sequence[str | bytes | None], *, workers: int = 1, ontology: Ontology | None = None,
    tagger: CaptionTagger | None = None, chunk_size: int = 20_000,
) -> pa.Table:
    """Tag every caption with ``workers`` processes; a :data:`TAG_SCHEMA` table in input order.

    Workers are forked after the automaton is built, so they inherit it (and the captions)
    instead of receiving pickles; where fork is unavailable the work runs in this process.
    """
    tagger = tagger or CaptionTagger(ontology)
    bounds = [(start, min(start + chunk_size, len(captions))) for start in range(0, len(captions), chunk_size)]
    _SHARED.update(tagger=tagger, captions=captions)
    try:
        if workers > 1 and len(bounds) > 1 and "fork" in multiprocessing.get_all_start_methods():
            with multiprocessing.get_context("fork").Pool(workers) as pool:
                parts = pool.map(_tag_range, bounds, chunksize=1)
        else:
            parts = [_tag_range(b) for b in bounds]
    finally:
        _SHARED.clear()
    return pa.concat_tables(parts) if parts else TAG_SCHEMA.empty_table()


def tag_table(table_dir: str | Path, *, workers: int = 1, out: str | Path | None = None) -> dict[str, Any]:
    """Tag the captions of a case table into ``caption_tags.parquet`` beside it (atomically).

    Only ``case_id`` and ``caption`` are read, so a million-row table costs two columns of memory.
    Returns a summary: cases, captions with at least one condition, and the output path.
    """
    table_file = resolve_table_file(table_dir)
    columns = pq.read_table(table_file, columns=["case_id", "caption"])
    tags = tag_captions(columns.column("caption").to_pylist(), workers=workers)
    result = tags.add_column(0, "case_id", columns.column("case_id"))
    target = Path(out) if out is not None else table_file.parent / TAGS_FILE
    with atomic_path(target) as tmp:
        pq.write_table(result, tmp)
    with_condition = int(pc.sum(pc.greater(pc.list_value_length(tags["conditions"]), 0)).as_py() or 0)
    return {"table": str(table_dir), "out": str(target), "cases": result.num_rows,
            "with_condition": with_condition}
