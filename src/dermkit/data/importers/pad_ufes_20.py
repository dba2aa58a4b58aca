"""PAD-UFES-20 (Pacheco et al. 2020): smartphone photos with patient data, ``metadata.csv`` + ``images/``.

One case per image (``img_id``). The release's yes/no columns become the ``history`` map, the
six lesion-symptom columns also become ontology ``symptoms``; ``UNK`` and empty cells are
"not recorded" and leave the key out rather than guessing "no".
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import ClassVar

from dermkit.core.errors import InputError
from dermkit.data.aggregate import single_label
from dermkit.data.importers.base import ImportContext, Importer, Where, register_importer
from dermkit.data.importers.csv_files import CsvColumns, find_csv, read_csv, rows
from dermkit.data.importers.image_paths import image_name
from dermkit.data.importers.values import is_missing, parse_body_site, parse_bool, parse_float, parse_int, parse_sex
from dermkit.data.table import Case

# Lesion symptoms the patient was asked about; the ontology's symptom synonyms resolve these names.
SYMPTOM_COLUMNS = ("itch", "grew", "hurt", "changed", "bleed", "elevation")
HISTORY_COLUMNS = (
    "smoke", "drink", "pesticide", "skin_cancer_history", "cancer_history", "has_piped_water",
    "has_sewage_system", *SYMPTOM_COLUMNS,
)
# How the diagnosis was confirmed, like HAM10000's dx_type: provenance of the label, not history.
# Every cancer in the release is biopsied, so as a model input it would give the label away.
BIOPSY_COLUMN = "biopsed"
MEASUREMENT_COLUMNS = {"diameter_1": "diameter_1_mm", "diameter_2": "diameter_2_mm"}
EXTRA_COLUMNS = ("background_father", "background_mother")


@register_importer
class PadUfes20Importer(Importer):
    """PATH is the folder holding ``metadata.csv`` and ``images/`` (or the CSV itself)."""

    name = "pad-ufes-20"
    licence = "CC BY 4.0"
    acquisition = "clinical"
    description = "PAD-UFES-20 smartphone clinical photos with patient history (6 lesion classes)"
    csv_columns: ClassVar[dict[str, CsvColumns]] = {"metadata.csv": CsvColumns(required=(
        "patient_id", "lesion_id", "age", "gender", "fitspatrick", "region", "diagnostic", "img_id",
        *HISTORY_COLUMNS, *MEASUREMENT_COLUMNS, *EXTRA_COLUMNS, BIOPSY_COLUMN,
    ))}

    def read(self, path: Path, context: ImportContext) -> Iterator[Case]:
        csv_path = find_csv(path, ("metadata.csv",))
        image_dir = Path(self.options.get("images", csv_path.parent / "images"))
        source = read_csv(csv_path, self.csv_columns["metadata.csv"])
        symptom_ids = _symptom_ids(context, csv_path)
        for number, row in rows(source, self.name):
            where = Where(csv_path, number)
            try:
                if is_missing(row["img_id"]):
                    raise where.error("img_id", "image name is empty")
                condition = self.map_label(row["diagnostic"], context, file=csv_path, row=number,
                                           field_name="diagnostic")
                history = {name: answer for name in HISTORY_COLUMNS
                           if (answer := parse_bool(row[name], where, name)) is not None}
                recorded = [name for name in SYMPTOM_COLUMNS if name in history]
                patient = None if is_missing(row["patient_id"]) else row["patient_id"]
                # Lesion numbers repeat across patients in the release: prefix them with the
                # patient (as the image names do) so splits never join two patients' lesions.
                lesion = None if patient is None or is_missing(row["lesion_id"]) else f"{patient}_{row['lesion_id']}"
                yield context.locate(Case(
                    case_id=f"{self.name}:{Path(row['img_id']).stem}",
                    image_paths=[str((image_dir / image_name(row["img_id"], where, "img_id")).resolve())],
                    source=self.name,
                    age=parse_float(row["age"], where, "age", 0, 120),
                    sex=parse_sex(row["gender"], where, "gender"),
                    fitzpatrick=parse_int(row["fitspatrick"], where, "fitspatrick", 1, 6),
                    body_site=parse_body_site(row["region"], context, where, "region"),
                    symptoms=[symptom_ids[name] for name in recorded if history[name]] if recorded else None,
                    history=history or None,
                    measurements=_measurements(row, where),
                    diagnosis=row["diagnostic"],
                    diagnosis_id=condition,
                    differential=single_label(condition),
                    patient_id=patient,
                    lesion_id=lesion,
                    extra=_extra(row, where),
                ), where, "img_id")
            except InputError as error:
                context.reject(error)


def _extra(row: Mapping[str, str], where: Where) -> dict[str, object] | None:
    """Parental background (country) and whether the lesion was biopsied, where recorded."""
    extra: dict[str, object] = {name: row[name] for name in EXTRA_COLUMNS if not is_missing(row[name])}
    biopsied = parse_bool(row[BIOPSY_COLUMN], where, BIOPSY_COLUMN)
    if biopsied is not None:
        extra[BIOPSY_COLUMN] = biopsied
    return extra or None


def _symptom_ids(context: ImportContext, csv_path: Path) -> dict[str, str]:
    """Resolve the symptom columns once; a gap in the ontology is a setup error, not a bad row."""
    ids = {}
    for name in SYMPTOM_COLUMNS:
        node = context.ontology.symptoms.find(name)
        if node is None:
            raise InputError("the ontology's symptom vocabulary does not resolve this column", file=csv_path,
                             field=name)
        ids[name] = node.id
    return ids


def _measurements(row: Mapping[str, str], where: Where) -> dict[str, float] | None:
    values = {key: parse_float(row[column], where, column, low=0) for column, key in MEASUREMENT_COLUMNS.items()}
    present = {key: value for key, value in values.items() if value is not None}
    return present or None
