"""The import run every source shares: duplicate ids, the image check, the ``--on-error skip`` report, the write."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from dermkit.core.atomic import recover
from dermkit.core.errors import InputError
from dermkit.data.images import check_image
from dermkit.data.importers.base import ImportContext, get_importer
from dermkit.data.schema import check_split_name
from dermkit.data.table import Case, write_table
from dermkit.ontology import Ontology, default_ontology


def _check_images(cases: list[Case], context: ImportContext, workers: int = 4) -> list[Case]:
    """Decode every image once (in threads); drop or raise on missing, corrupt or oversized ones."""
    paths = sorted({p for case in cases for p in case.image_paths})

    def check(path: str) -> InputError | None:
        try:
            check_image(path)
        except InputError as exc:
            return exc
        return None

    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(tqdm(pool.map(check, paths), total=len(paths), desc="checking images", unit="img", leave=False))
    bad = {path: error for path, error in zip(paths, results) if error is not None}
    kept = []
    for case in cases:
        errors = [bad[p] for p in case.image_paths if p in bad]
        if errors:
            error = errors[0]
            context.reject(context.error_about(case, f"image {error.file}: {error.message}", image=True,
                                               fallback=Path(str(error.file))))
            continue
        kept.append(case)
    return kept


def _drop_duplicates(cases: list[Case], context: ImportContext, origin: Path) -> list[Case]:
    seen: dict[str, Case] = {}
    kept = []
    for case in cases:
        first = seen.get(case.case_id)
        if first is not None:
            earlier = context.origins.get(id(first))
            at = f" (first at row {earlier.where.row})" if earlier else ""
            context.reject(context.error_about(case, f"duplicated case id{at}", image=False, fallback=origin))
            continue
        seen[case.case_id] = case
        kept.append(case)
    return kept


@dataclass
class ImportResult:
    out_dir: Path
    cases: int
    problems: list[dict[str, Any]]


def run_import(
    source: str,
    path: str | Path,
    out_dir: str | Path,
    *,
    on_error: str = "raise",
    options: Mapping[str, str] | None = None,
    check_images: bool = True,
    ontology: Ontology | None = None,
    progress: Callable[[str], None] | None = None,
    split: str | None = None,
) -> ImportResult:
    """Import ``path`` with the ``source`` importer and write a case table to ``out_dir``.

    Nothing is written unless the whole import succeeds (or, with ``on_error='skip'``, every
    rejected row is in ``import_report.json`` beside the table). ``split`` puts every case in that
    split: an external test set is imported with ``split="test"`` and needs no ``data split``.
    """
    check_split_name(split, "--split")
    recover(out_dir)  # a killed earlier write of this table is finished or undone even if this import fails
    importer = get_importer(source)(options)
    context = ImportContext(on_error=on_error, ontology=ontology or default_ontology())
    path = Path(path)
    if not path.exists():
        raise InputError("path not found", file=path)
    cases = []
    for case in importer.read(path, context):
        case.source = importer.name
        case.licence = case.licence or importer.licence
        case.acquisition = case.acquisition or importer.acquisition
        case.split = split or case.split
        cases.append(case)
    cases = _drop_duplicates(cases, context, path)
    if check_images:
        cases = _check_images(cases, context)
    if not cases:
        raise InputError(f"no usable cases found ({len(context.problems)} rejected)", file=path)
    manifest = {"source": importer.name, "imported_from": str(path.resolve()), "licence": importer.licence,
                "rejected": len(context.problems), "options": dict(options or {})}
    if split is not None:
        manifest["split"] = {"all": split}
    written = write_table(cases, out_dir, manifest=manifest, report=context.problems)
    return ImportResult(written, len(cases), context.problems)
