"""DDI, Diverse Dermatology Images (Daneshjou et al. 2022): biopsy-proven clinical photos, ``ddi_metadata.csv``.

DDI grades skin tone in three Fitzpatrick pairs (12, 34, 56). The case table holds one
Fitzpatrick type, and picking one of the pair would invent a precision the graders did not
give, so the pair goes to ``extra["fitzpatrick_group"]`` (``"I-II"``, ...) and ``fitzpatrick``
stays null.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

from dermkit.core.errors import InputError
from dermkit.data.aggregate import single_label
from dermkit.data.importers.base import ImportContext, Importer, Where, register_importer
from dermkit.data.importers.csv_files import CsvColumns, find_csv, read_csv, rows
from dermkit.data.importers.image_paths import image_name
from dermkit.data.importers.values import is_missing, parse_bool
from dermkit.data.table import Case

FITZPATRICK_GROUPS = {"12": "I-II", "34": "III-IV", "56": "V-VI"}


@register_importer
class DDIImporter(Importer):
    """PATH is ``ddi_metadata.csv`` or its folder; images from ``-o images=DIR``, ``images/`` or beside it."""

    name = "ddi"
    licence = "Stanford DDI research use agreement"
    acquisition = "clinical"
    description = "DDI biopsy-proven clinical photos across Fitzpatrick I-VI (78 conditions)"
    csv_columns: ClassVar[dict[str, CsvColumns]] = {"ddi_metadata.csv": CsvColumns(required=("DDI_ID", "DDI_file", "skin_tone", "malignant", "disease"))}

    def read(self, path: Path, context: ImportContext) -> Iterator[Case]:
        csv_path = find_csv(path, ("ddi_metadata.csv",))
        image_dir = self._image_dir(csv_path)
        source = read_csv(csv_path, self.csv_columns["ddi_metadata.csv"])
        for number, row in rows(source, self.name):
            where = Where(csv_path, number)
            try:
                for name in ("DDI_ID", "DDI_file"):
                    if is_missing(row[name]):
                        raise where.error(name, "is empty")
                tone = row["skin_tone"].strip()
                if tone not in FITZPATRICK_GROUPS:
                    raise where.error("skin_tone", f"{tone!r} is not one of {', '.join(FITZPATRICK_GROUPS)}")
                condition = self.map_label(row["disease"], context, file=csv_path, row=number, field_name="disease")
                yield context.locate(Case(
                    case_id=f"{self.name}:{row['DDI_ID']}",
                    image_paths=[str((image_dir / image_name(row["DDI_file"], where, "DDI_file")).resolve())],
                    source=self.name,
                    diagnosis=row["disease"],
                    diagnosis_id=condition,
                    differential=single_label(condition),
                    extra={"fitzpatrick_group": FITZPATRICK_GROUPS[tone],
                           "malignant": parse_bool(row["malignant"], where, "malignant")},
                ), where, "DDI_ID", "DDI_file")
            except InputError as error:
                context.reject(error)

    def _image_dir(self, csv_path: Path) -> Path:
        """The download keeps images beside the CSV; the DDI code expects them in ``images/``."""
        if "images" in self.options:
            return Path(self.options["images"])
        subfolder = csv_path.parent / "images"
        return subfolder if subfolder.is_dir() else csv_path.parent
