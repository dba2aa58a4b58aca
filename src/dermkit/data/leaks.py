"""Leak checks on a split case table: what one split shares with another.

A split can leak through a patient or lesion id present in two splits, through a synthetic image
generated from a case of another split, or through the same photo filed twice under different
case ids (caught by perceptual hashes, see :mod:`dermkit.data.image_hash`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from dermkit.core.errors import InputError
from dermkit.data.image_hash import check_max_distance, near_duplicate_paths
from dermkit.data.table import read_table

DEFAULT_HASH_DISTANCE = 20  # of 256 bits; see dermkit.data.image_hash for the measured margins


@dataclass
class LeakReport:
    """Every leak found; ``images`` is None when images were not checked."""

    cases: int
    unsplit: int
    hash_distance: int | None
    patients: list[dict[str, Any]] = field(default_factory=list)
    lesions: list[dict[str, Any]] = field(default_factory=list)
    derived: list[dict[str, Any]] = field(default_factory=list)
    images: list[dict[str, Any]] | None = None

    @property
    def clean(self) -> bool:
        return not (self.patients or self.lesions or self.derived or self.images)

    def as_dict(self) -> dict[str, Any]:
        return {"clean": self.clean, **asdict(self)}


def shared_ids(frame: pd.DataFrame, column: str) -> list[dict[str, Any]]:
    """Ids of ``column`` found in more than one split, with the case ids per split."""
    present = frame.loc[frame[column].notna() & frame["split"].notna(), [column, "split", "case_id"]]
    spread = present.groupby(column)["split"].nunique()
    leaky = present[present[column].isin(spread.index[spread > 1])]
    out = []
    for value, part in leaky.groupby(column, sort=True):
        by_split = part.groupby("split")["case_id"].agg(lambda ids: sorted(ids))
        out.append({"id": str(value), "splits": {str(s): list(ids) for s, ids in by_split.items()}})
    return out


def derived_leaks(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Synthetic cases whose source case sits in another split."""
    split_of = pd.Series(frame["split"].to_numpy(), index=frame["case_id"].to_numpy())
    source_split = frame["derived_from"].map(split_of)
    crossed = frame[source_split.notna() & frame["split"].notna() & (source_split != frame["split"])]
    return [
        {"case_id": row.case_id, "split": row.split, "derived_from": row.derived_from,
         "source_split": split_of[row.derived_from]}
        for row in crossed.itertuples(index=False)
    ]


def image_leaks(
    frame: pd.DataFrame, max_distance: int = DEFAULT_HASH_DISTANCE, *, workers: int | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Pairs of images of different splits within ``max_distance`` bits of pHash (same file included)."""
    split = frame[frame["split"].notna()]
    images = split[["case_id", "split", "image_paths"]].explode("image_paths", ignore_index=True)
    pairs, distances = near_duplicate_paths(images["image_paths"].tolist(), max_distance, workers=workers,
                                            progress=progress)
    splits = images["split"].to_numpy()
    crossed = splits[pairs[:, 0]] != splits[pairs[:, 1]]
    records = images.to_dict(orient="records")
    return [
        {"distance": int(d),
         "images": [{"case_id": records[i]["case_id"], "split": records[i]["split"],
                     "path": records[i]["image_paths"]} for i in pair]}
        for pair, d in zip(pairs[crossed].tolist(), distances[crossed])
    ]


def find_leaks(
    frame: pd.DataFrame, *, hash_distance: int | None = DEFAULT_HASH_DISTANCE, workers: int | None = None,
    progress: bool = True, origin: str | Path | None = None,
) -> LeakReport:
    """Check a split table; ``hash_distance=None`` skips the (slower) image comparison."""
    if frame["split"].isna().all():
        raise InputError("no case has a split yet; run `dermkit data split` first", file=origin, field="split")
    if hash_distance is not None:
        check_max_distance(hash_distance, "--hash-distance")
    return LeakReport(
        cases=len(frame),
        unsplit=int(frame["split"].isna().sum()),
        hash_distance=hash_distance,
        patients=shared_ids(frame, "patient_id"),
        lesions=shared_ids(frame, "lesion_id"),
        derived=derived_leaks(frame),
        images=None if hash_distance is None else image_leaks(frame, hash_distance, workers=workers,
                                                               progress=progress),
    )


def check_table(table_dir: str | Path, **options: Any) -> LeakReport:
    """:func:`find_leaks` on the case table at ``table_dir``."""
    return find_leaks(read_table(table_dir), origin=table_dir, **options)


def format_leaks(report: LeakReport) -> str:
    """Plain-text summary: counts, then one line per leak."""
    lines = [f"{report.cases} cases ({report.unsplit} without a split): "
             + ("no leaks" if report.clean else "LEAKS FOUND")]
    for kind, items in (("patient", report.patients), ("lesion", report.lesions)):
        for item in items:
            where = "; ".join(f"{s}: {', '.join(ids)}" for s, ids in item["splits"].items())
            lines.append(f"  {kind} {item['id']} in {len(item['splits'])} splits ({where})")
    for item in report.derived:
        lines.append(f"  synthetic {item['case_id']} ({item['split']}) derived from "
                     f"{item['derived_from']} ({item['source_split']})")
    for item in report.images or []:
        a, b = item["images"]
        lines.append(f"  near-identical images (distance {item['distance']}): "
                     f"{a['case_id']} ({a['split']}) ~ {b['case_id']} ({b['split']})")
    if report.images is None:
        lines.append("  images not compared (--no-images)")
    return "\n".join(lines)
