"""The case table: one row per case (a patient encounter or a lesion), images by path.

Every importer writes this schema and every later stage reads it. Missing values are real
nulls. Categorical fields use the small controlled vocabularies below, so strata and filters
never have to guess at spellings.
"""

from __future__ import annotations

import pyarrow as pa

from dermkit.core.errors import InputError

MAX_IMAGES_PER_CASE = 6

SEXES = ("female", "male", "other")
ACQUISITIONS = ("clinical", "dermoscopic")
SPLITS = ("train", "val", "test")
ALL_SPLITS = "all"  # what a scoring command reads as "every case, whatever its split"
FITZPATRICK_TYPES = (1, 2, 3, 4, 5, 6)
# The skin-type groups results are reported by (strata, model-card limitations).
FITZPATRICK_GROUPS: dict[str, tuple[int, ...]] = {"I-II": (1, 2), "III-IV": (3, 4), "V-VI": (5, 6)}
MONK_TONES = tuple(range(1, 11))



def check_split_name(split: str | None, field: str) -> None:
    """Refuse a split name outside :data:`SPLITS` (None passes: nothing to set)."""
    if split is not None and split not in SPLITS:
        raise InputError(f"split must be one of {', '.join(SPLITS)}, got {split!r}", field=field)


# (name, arrow type, nullable, description) — the documented contract, rendered in docs/case-table.md.
FIELDS: tuple[tuple[str, pa.DataType, bool, str], ...] = (
    ("case_id", pa.string(), False, "Unique id of the case within the table (prefixed by source)."),
    ("image_paths", pa.list_(pa.string()), False, "1–6 absolute paths of the case's images."),
    ("age", pa.float32(), True, "Age in years."),
    ("sex", pa.string(), True, "female | male | other."),
    ("fitzpatrick", pa.int8(), True, "Fitzpatrick skin type 1–6 (I–VI)."),
    ("monk", pa.int8(), True, "Monk skin tone 1–10."),
    ("body_site", pa.string(), True, "Body-site id from the ontology's body-site vocabulary."),
    ("symptoms", pa.list_(pa.string()), True, "Symptoms reported present (null when not asked)."),
    ("duration", pa.string(), True, "How long the condition has been present (category text)."),
    ("history", pa.map_(pa.string(), pa.bool_()), True,
     "Yes/no history answers by name (itch, grew, smoke, ...); a missing key means not recorded."),
    ("measurements", pa.map_(pa.string(), pa.float32()), True, "Numeric findings, e.g. diameter_1_mm."),
    ("history_text", pa.string(), True, "Free-text medical history."),
    ("caption", pa.string(), True, "Image description (Derm1M captions; built from fields elsewhere)."),
    ("diagnosis", pa.string(), True, "The source's own label text or code, as released."),
    ("diagnosis_id", pa.string(), True, "Ontology condition id of the (top) diagnosis."),
    ("differential", pa.map_(pa.string(), pa.float32()), True,
     "Condition id → weight, summing to 1; one entry for single-label sources; null when unlabelled."),
    ("concepts", pa.list_(pa.string()), True, "Concept ids present in the image."),
    ("patient_id", pa.string(), True, "Patient id (for leak-free splits)."),
    ("lesion_id", pa.string(), True, "Lesion id (for leak-free splits)."),
    ("acquisition", pa.string(), True, "clinical | dermoscopic."),
    ("source", pa.string(), False, "Source dataset name (the importer's name)."),
    ("licence", pa.string(), True, "Licence of the source data."),
    ("split", pa.string(), True, "train | val | test once split."),
    ("date", pa.timestamp("ms"), True, "When the case was acquired (enables temporal splits)."),
    ("synthetic", pa.bool_(), False, "True for generated images (never in val/test)."),
    ("derived_from", pa.string(), True, "For synthetic cases, the case they were generated from."),
    ("extra", pa.string(), True, "JSON object of source-specific fields kept verbatim."),
)

CASE_SCHEMA = pa.schema([pa.field(name, dtype, nullable=nullable) for name, dtype, nullable, _ in FIELDS])
COLUMNS = tuple(name for name, *_ in FIELDS)
DESCRIPTIONS = {name: description for name, _, _, description in FIELDS}
