"""Derm1M (Yan et al. 2025): image–caption pairs with a disease label and comma-separated tags.

The captions are the point of this source and are kept as released. The tag columns
(``skin_concept``, ``body_location``, ``symptoms``) are free text extracted from the captions,
so tags the ontology does not know are kept in ``extra`` rather than rejecting the pair.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from dermkit.core.errors import InputError
from dermkit.data.aggregate import single_label
from dermkit.data.importers.base import ImportContext, Importer, Where, register_importer
from dermkit.data.importers.csv_files import CsvColumns, Row, find_csv, read_csv, rows
from dermkit.data.importers.image_paths import locate_image
from dermkit.data.importers.values import is_missing, parse_sex
from dermkit.data.table import Case
from dermkit.ontology import Hierarchy
from dermkit.ontology.normalize import normalize_term

CSV_NAMES = ("Derm1M_v2_pretrain.csv", "Derm1M_v2_validation.csv")
COLUMNS = CsvColumns(required=("filename", "caption", "truncated_caption", "source", "source_type", "disease_label",
                               "hierarchical_disease_label", "skin_concept", "body_location", "symptoms", "age",
                               "gender"))
# Derm1M writes "no value" as a sentence: "No definitive diagnosis", "No symptom information", ...
PLACEHOLDER = re.compile(r"^no\b.*\b(information|diagnosis|concepts?)$")
AGE_NUMBER = re.compile(r"^(\d+(?:\.\d+)?)(?:[\s-]*(?:years?|yrs?|y)(?:[\s-]*old)?)?$")


def _missing(value: str) -> bool:
    return is_missing(value) or PLACEHOLDER.match(normalize_term(value)) is not None


def _terms(value: str) -> list[str]:
    """A comma-separated tag column as a list of terms (none for a placeholder)."""
    if _missing(value):
        return []
    return [term.strip() for term in value.split(",") if term.strip() and not _missing(term)]


def _resolve(terms: list[str], vocabulary: Hierarchy) -> tuple[list[str], list[str]]:
    """(ids of the terms the vocabulary knows, in order and once each; the terms it does not)."""
    known: list[str] = []
    unknown: list[str] = []
    for term in terms:
        node = vocabulary.find(term)
        if node is None:
            unknown.append(term)
        elif node.id not in known:
            known.append(node.id)
    return known, unknown


@register_importer
class Derm1MImporter(Importer):
    """PATH is a Derm1M CSV, or its folder (then ``Derm1M_v2_pretrain.csv`` is read).

    Images are found from ``filename`` under ``-o images=DIR`` (default: the CSV's folder).
    """

    name = "derm1m"
    licence = "CC BY-NC 4.0"
    description = "Derm1M image–caption pairs"
    csv_columns: ClassVar[dict[str, CsvColumns]] = {"Derm1M_v2_pretrain.csv": COLUMNS}

    def read(self, path: Path, context: ImportContext) -> Iterator[Case]:
        csv_path = find_csv(path, CSV_NAMES)
        roots = [Path(self.options.get("images", csv_path.parent))]
        source = read_csv(csv_path, COLUMNS)
        pairs_of_image: dict[str, int] = {}
        for number, row in rows(source, "derm1m"):
            where = Where(csv_path, number)
            try:
                pair = pairs_of_image.get(row["filename"], 0) + 1
                case = self._case(row, where, roots, pair, context)
                pairs_of_image[row["filename"]] = pair
                yield context.locate(case, where, "filename")
            except InputError as error:
                context.reject(error)

    def _case(self, row: Row, where: Where, roots: list[Path], pair: int,
              context: ImportContext) -> Case:
        """The ``pair``-th caption of its image (1 for the first).

        Later pairs get ids ``#2``, ``#3``, ... and share the image's lesion id, so that a split
        never puts one image on both sides.
        """
        if _missing(row["caption"]):
            raise where.error("caption", "the pair has no caption")
        image = locate_image(row["filename"], roots, where, "filename")
        condition = None
        if not _missing(row["disease_label"]):
            condition = self.map_label(row["disease_label"], context, file=where.file, row=where.row,
                                       field_name="disease_label")
        concepts, unknown_concepts = _resolve(_terms(row["skin_concept"]), context.ontology.concepts)
        sites, unknown_sites = _resolve(_terms(row["body_location"]), context.ontology.body_sites)
        symptoms, unknown_symptoms = _resolve(_terms(row["symptoms"]), context.ontology.symptoms)
        age, age_text = self._age(row["age"])
        extra: dict[str, Any] = {
            "hierarchical_disease_label": None if _missing(row["hierarchical_disease_label"])
            else row["hierarchical_disease_label"],
            "derm1m_source": row["source"] or None,
            "source_type": row["source_type"] or None,
            "truncated_caption": None if _missing(row["truncated_caption"]) else row["truncated_caption"],
            "body_sites": sites,
            "age_text": age_text,
            "unmapped": {name: terms for name, terms in (("skin_concept", unknown_concepts),
                         ("body_location", unknown_sites), ("symptoms", unknown_symptoms)) if terms},
        }
        return Case(
            case_id=f"derm1m:{row['filename']}" + ("" if pair == 1 else f"#{pair}"),
            image_paths=[str(image.resolve())],
            source=self.name,
            age=age,
            sex=None if _missing(row["gender"]) else parse_sex(row["gender"], where, "gender"),
            body_site=sites[0] if sites else None,
            symptoms=symptoms or None,
            caption=row["caption"],
            diagnosis=None if condition is None else row["disease_label"],
            diagnosis_id=condition,
            differential=None if condition is None else single_label(condition),
            concepts=concepts or None,
            lesion_id=row["filename"],
            extra=extra,
        )

    @staticmethod
    def _age(value: str) -> tuple[float | None, str | None]:
        """(age in years when the text is a number of years, the text itself when it is not)."""
        if _missing(value):
            return None, None
        match = AGE_NUMBER.match(value.strip().lower())
        if match is None or not 0 <= float(match.group(1)) <= 120:
            return None, value.strip()
        return float(match.group(1)), None
