"""The predictions table: one row per evaluated case, written once by a task, read by every metric.

Besides the model's class scores each row carries the case's label and grouping fields (skin type,
sex, age, acquisition, source, body site, patient), so any metric can later be stratified or
bootstrapped by patient without re-running the model. The model id and the class list (ontology
ids, in score-column order) travel in the Parquet schema metadata, so a table is self-describing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from dermkit.core import InputError, atomic_path

UNLABELLED = -1
"""``label`` of a case without ground truth (e.g. a deployment set)."""

GROUPING_FIELDS = ("patient_id", "lesion_id", "fitzpatrick", "monk", "sex", "age", "acquisition", "source", "body_site")

# (name, arrow type, nullable, description): the documented contract, rendered in docs/metrics.md.
FIELDS: tuple[tuple[str, pa.DataType, bool, str], ...] = (
    ("case_id", pa.string(), False, "Case id, as in the case table."),
    ("patient_id", pa.string(), True, "Patient id: the bootstrap resamples patients."),
    ("lesion_id", pa.string(), True, "Lesion id: resampled where no patient id is known (HAM10000)."),
    ("fitzpatrick", pa.int8(), True, "Fitzpatrick skin type 1–6."),
    ("monk", pa.int8(), True, "Monk skin tone 1–10."),
    ("sex", pa.string(), True, "female | male | other."),
    ("age", pa.float32(), True, "Age in years."),
    ("acquisition", pa.string(), True, "clinical | dermoscopic."),
    ("source", pa.string(), True, "Source dataset name."),
    ("body_site", pa.string(), True, "Body-site id."),
    ("label", pa.int32(), False, "Index of the true class in the class list, -1 when unlabelled."),
    ("target", pa.list_(pa.float64()), True, "Soft reference weights per class (a differential), or null."),
    ("probs", pa.list_(pa.float64()), False, "The model's score per class, in class-list order."),
    ("split", pa.string(), True, "train | val | test."),
)
SCHEMA = pa.schema([pa.field(name, dtype, nullable=nullable) for name, dtype, nullable, _ in FIELDS])
COLUMNS = tuple(name for name, *_ in FIELDS)
MODEL_KEY = b"dermkit.model_id"
CLASSES_KEY = b"dermkit.classes"


@dataclass(frozen=True)
class Predictions:
    """A validated predictions table with the model id and the class list it scores."""

    frame: pd.DataFrame
    model_id: str
    classes: tuple[str, ...]

    def __post_init__(self) -> None:
        missing = [name for name in ("case_id", "label", "probs") if name not in self.frame.columns]
        if missing:
            raise InputError(f"predictions lack required columns {missing}")
        frame = self.frame.reindex(columns=list(COLUMNS)).reset_index(drop=True)
        object.__setattr__(self, "frame", frame)
        object.__setattr__(self, "classes", tuple(self.classes))
        if frame["case_id"].isna().any() or not frame["case_id"].is_unique:
            raise InputError("case_id must be present and unique", field="case_id")
        n_classes = len(self.classes)
        widths = frame["probs"].map(lambda row: len(row) if hasattr(row, "__len__") else 0)
        if (widths != n_classes).any():
            row = int(np.flatnonzero(widths != n_classes)[0]) + 1
            raise InputError(f"probs must have one score per class ({n_classes})", row=row, field="probs")
        labels = frame["label"].to_numpy(dtype=np.float64, na_value=np.nan)
        if not np.isin(labels, np.arange(UNLABELLED, n_classes)).all():
            raise InputError(f"label must be a whole number in [-1, {n_classes})", field="label")

    def __len__(self) -> int:
        return len(self.frame)

    @classmethod
    def from_cases(
        cls,
        cases: pd.DataFrame,
        probs: np.ndarray,
        labels: Sequence[int] | np.ndarray,
        model_id: str,
        classes: Sequence[str],
        target: np.ndarray | None = None,
    ) -> Predictions:
        """Build the table from case-table rows (for the grouping fields) and the model's scores."""
        frame = cases.reindex(columns=[name for name in COLUMNS if name not in ("label", "target", "probs")])
        frame = frame.reset_index(drop=True)
        frame["label"] = np.asarray(labels, dtype=np.int32)
        frame["probs"] = list(np.asarray(probs, dtype=np.float64))
        frame["target"] = None if target is None else list(np.asarray(target, dtype=np.float64))
        return cls(frame, model_id, tuple(classes))

    def probs(self) -> np.ndarray:
        """Scores as an N×C float array."""
        return np.stack(self.frame["probs"].to_numpy()).astype(np.float64).reshape(len(self), len(self.classes))

    def labels(self) -> np.ndarray:
        """Labels as an N integer array (-1 for unlabelled)."""
        return self.frame["label"].to_numpy(dtype=np.int64)

    def where(self, mask: Sequence[bool] | np.ndarray | pd.Series) -> Predictions:
        """The rows selected by a boolean mask, same model and classes."""
        return Predictions(self.frame[np.asarray(mask, dtype=bool)], self.model_id, self.classes)

    def labelled(self) -> Predictions:
        """The rows with a label: metrics refuse -1 rather than silently dropping them."""
        return self.where(self.frame["label"] != UNLABELLED)


def resampling_units(frame: pd.DataFrame) -> np.ndarray:
    """The bootstrap's unit per row: the patient, else the lesion, else the row alone (None).

    Images of one patient or one lesion are not independent draws; HAM10000 records lesions only.
    """
    units = np.full(len(frame), None, dtype=object)
    for column in ("lesion_id", "patient_id"):  # the patient, the coarser unit, wins where both are known
        if column in frame:
            values = frame[column].to_numpy(dtype=object)
            known = pd.notna(values)
            units[known] = [f"{column}:{value}" for value in values[known]]
    return units


def write_predictions(predictions: Predictions, path: str | Path) -> None:
    """Write the table to Parquet atomically, model id and classes in the schema metadata."""
    metadata = {MODEL_KEY: predictions.model_id.encode(), CLASSES_KEY: json.dumps(list(predictions.classes)).encode()}
    table = pa.Table.from_pandas(predictions.frame, schema=SCHEMA, preserve_index=False)
    table = table.replace_schema_metadata(metadata)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_predictions(path: str | Path) -> Predictions:
    """Read a table written by :func:`write_predictions`."""
    table = pq.read_table(path)
    metadata = table.schema.metadata or {}
    if MODEL_KEY not in metadata or CLASSES_KEY not in metadata:
        raise InputError("not a dermkit predictions table (no model id / classes metadata)", file=path)
    classes = tuple(json.loads(metadata[CLASSES_KEY]))
    return Predictions(table.to_pandas(), metadata[MODEL_KEY].decode(), classes)

