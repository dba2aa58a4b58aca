"""Reading, validating and writing case tables (a directory: ``cases.parquet`` + ``manifest.json``)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from dermkit.core.atomic import atomic_dir, atomic_path, recover
from dermkit.core.errors import InputError
from dermkit.data import schema

TABLE_FILE = "cases.parquet"
MANIFEST_FILE = "manifest.json"
REPORT_FILE = "import_report.json"


@dataclass
class Case:
    """One case, typed. Lists and maps default to empty/None as the schema allows."""

    case_id: str
    image_paths: list[str]
    source: str
    age: float | None = None
    sex: str | None = None
    fitzpatrick: int | None = None
    monk: int | None = None
    body_site: str | None = None
    symptoms: list[str] | None = None
    duration: str | None = None
    history: dict[str, bool] | None = None
    measurements: dict[str, float] | None = None
    history_text: str | None = None
    caption: str | None = None
    diagnosis: str | None = None
    diagnosis_id: str | None = None
    differential: dict[str, float] | None = None
    concepts: list[str] | None = None
    patient_id: str | None = None
    lesion_id: str | None = None
    acquisition: str | None = None
    licence: str | None = None
    split: str | None = None
    date: datetime | None = None
    synthetic: bool = False
    derived_from: str | None = None
    extra: dict[str, Any] | None = field(default=None)

    def to_row(self) -> dict[str, Any]:
        row = asdict(self)
        row["extra"] = None if self.extra is None else json.dumps(self.extra, sort_keys=True, default=str)
        return row

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Case:
        values = {f.name: _py(row.get(f.name)) for f in fields(cls)}
        values["extra"] = json.loads(values["extra"]) if values["extra"] else None
        values["image_paths"] = list(values["image_paths"] or [])
        values["synthetic"] = bool(values["synthetic"])
        return cls(**values)


def _py(value: Any) -> Any:
    """pandas/numpy scalars and NaN → plain Python values and None."""
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    return value


def cases_to_frame(cases: Iterable[Case]) -> pd.DataFrame:
    rows = [case.to_row() for case in cases]
    return pd.DataFrame(rows, columns=list(schema.COLUMNS))


def frame_to_cases(frame: pd.DataFrame) -> Iterator[Case]:
    for row in frame.to_dict(orient="records"):
        yield Case.from_row(row)


def validate_frame(frame: pd.DataFrame, origin: str | Path | None = None) -> None:
    """Check the schema's invariants; raise :class:`InputError` naming the row and field."""
    missing = [c for c in schema.COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(f"case table lacks columns {missing}", file=origin)
    duplicated = frame["case_id"][frame["case_id"].duplicated()]
    if len(duplicated):
        first = int(duplicated.index[0])
        raise InputError(f"duplicated case id {duplicated.iloc[0]!r}", file=origin, row=first + 1, field="case_id")
    for position, row in enumerate(frame.itertuples(index=False), start=1):
        validate_row(row._asdict(), origin, position)


def validate_row(row: Mapping[str, Any], origin: str | Path | None = None, position: int | None = None) -> None:
    def fail(field_name: str, message: str) -> None:
        raise InputError(message, file=origin, row=position, field=field_name)

    if not row.get("case_id"):
        fail("case_id", "case id is empty")
    paths = _py(row.get("image_paths")) or []
    if not 1 <= len(paths) <= schema.MAX_IMAGES_PER_CASE:
        fail("image_paths", f"a case has 1–{schema.MAX_IMAGES_PER_CASE} images, got {len(paths)}")
    checks: list[tuple[str, Sequence[Any]]] = [
        ("sex", schema.SEXES),
        ("acquisition", schema.ACQUISITIONS),
        ("split", schema.SPLITS),
        ("fitzpatrick", schema.FITZPATRICK_TYPES),
        ("monk", schema.MONK_TONES),
    ]
    for name, allowed in checks:
        value = _py(row.get(name))
        if value is not None and value not in allowed:
            fail(name, f"{value!r} is not one of {list(allowed)}")
    age = _py(row.get("age"))
    if age is not None and not 0 <= age <= 120:
        fail("age", f"age {age} is outside 0–120")
    differential = _py(row.get("differential"))
    if differential:
        if isinstance(differential, list):
            differential = dict(differential)
        total = sum(differential.values())
        if any(w < 0 for w in differential.values()) or abs(total - 1.0) > 1e-3:
            fail("differential", f"weights must be non-negative and sum to 1, got {differential}")


def to_arrow(frame: pd.DataFrame) -> pa.Table:
    """Convert with the exact case schema (so nulls stay nulls and types never drift)."""
    columns = {}
    for name, dtype, _, _ in schema.FIELDS:
        values = [_py(v) for v in frame[name].tolist()]
        if pa.types.is_map(dtype):
            values = [None if v is None else list(dict(v).items()) for v in values]
        columns[name] = pa.array(values, type=dtype)
    return pa.Table.from_pydict(columns, schema=schema.CASE_SCHEMA)


def write_table(
    frame: pd.DataFrame | Iterable[Case],
    out_dir: str | Path,
    *,
    manifest: Mapping[str, Any] | None = None,
    report: Sequence[Mapping[str, Any]] | None = None,
) -> Path:
    """Validate and write a case table directory atomically; return its path."""
    if not isinstance(frame, pd.DataFrame):
        frame = cases_to_frame(frame)
    frame = frame.reset_index(drop=True)
    validate_frame(frame, origin=out_dir)
    table = to_arrow(frame)
    out_dir = Path(out_dir)
    info = {
        "format": "dermkit-case-table",
        "version": 1,
        "cases": len(frame),
        "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **(manifest or {}),
    }
    with atomic_dir(out_dir) as tmp:
        pq.write_table(table, tmp / TABLE_FILE)
        (tmp / MANIFEST_FILE).write_text(json.dumps(info, indent=2, default=str) + "\n")
        if report is not None:
            (tmp / REPORT_FILE).write_text(json.dumps(list(report), indent=2, default=str) + "\n")
    return out_dir


def update_table(frame: pd.DataFrame, table_dir: str | Path, **manifest_updates: Any) -> Path:
    """Rewrite ``cases.parquet`` of an existing table in place (atomically), merging the manifest."""
    table_dir = Path(table_dir)
    validate_frame(frame.reset_index(drop=True), origin=table_dir)
    manifest = read_manifest(table_dir)
    manifest.update(manifest_updates, cases=len(frame))
    with atomic_path(table_dir / TABLE_FILE) as tmp:
        pq.write_table(to_arrow(frame.reset_index(drop=True)), tmp)
    with atomic_path(table_dir / MANIFEST_FILE) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    return table_dir


def resolve_table_file(path: str | Path) -> Path:
    """The Parquet file of a table, after finishing or undoing a killed write of it (:func:`recover`)."""
    path = Path(path)
    recover(path)
    candidate = path / TABLE_FILE if path.is_dir() else path
    if not candidate.exists():
        raise InputError("no case table here (expected a directory with cases.parquet)", file=path)
    return candidate


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a case table (directory or ``.parquet`` file) with maps as dicts and nulls as None."""
    table_file = resolve_table_file(path)
    try:
        table = pq.read_table(table_file)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"unreadable Parquet file: {exc}", file=table_file) from exc
    missing = [c for c in schema.COLUMNS if c not in table.column_names]
    if missing:
        raise InputError(f"not a dermkit case table: lacks columns {missing}", file=table_file)
    frame = table.to_pandas(maps_as_pydicts="strict")
    return frame.astype(object).where(frame.notna(), None)


def read_cases(path: str | Path) -> list[Case]:
    return list(frame_to_cases(read_table(path)))


def read_manifest(path: str | Path) -> dict[str, Any]:
    manifest_file = Path(path) / MANIFEST_FILE
    if not manifest_file.exists():
        return {}
    return json.loads(manifest_file.read_text())


def split_summary(frame: pd.DataFrame) -> str:
    """The table's splits and their case counts, e.g. ``test 928`` or ``928 cases without a split``."""
    counts = frame["split"].fillna("").value_counts()
    named = [f"{split} {int(counts[split])}" for split in schema.SPLITS if split in counts]
    unsplit = int(counts.get("", 0))
    return ", ".join(named + ([f"{unsplit} cases without a split"] if unsplit else [])) or "no cases"


def rows_in_splits(frame: pd.DataFrame, splits: Sequence[str], origin: str | Path | None = None) -> pd.DataFrame:
    """The rows of ``splits`` (every row when they include ``all``), re-indexed from 0.

    An empty selection is an error naming the table and the splits it has: scoring nothing would
    otherwise fail deep inside a metric, or report a figure over no cases.
    """
    wanted = list(splits)
    for split in wanted:
        if split != schema.ALL_SPLITS and split not in schema.SPLITS:
            raise InputError(f"split must be one of {', '.join((*schema.SPLITS, schema.ALL_SPLITS))}, got {split!r}",
                             file=origin, field="split")
    rows = frame if schema.ALL_SPLITS in wanted else frame[frame["split"].isin(wanted)]
    if rows.empty:
        raise InputError(f"no cases in split {' + '.join(wanted)}; the table has {split_summary(frame)} (score every "
                         "case with --split all, or mark the table a test set with 'dermkit data split TABLE --all test')",
                         file=origin, field="split")
    return rows.reset_index(drop=True)
