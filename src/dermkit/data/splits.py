"""Leak-free train/val/test splits: whole groups of cases, stratified by label, optionally by time.

A model evaluated on a patient (or lesion) it was trained on looks better than it is, so every
split keeps each group in one split. Groups are connected components: with ``by="patient"``,
cases sharing a patient id *or* a lesion id are one group, so a row whose patient id is null
falls back to its lesion id, and a row with neither stands alone (its case id). ``by="lesion"``
links by lesion id only; ``by="case"`` makes every case its own group.

Synthetic cases only ever go to train, together with the group of the case they were derived
from (an image generated from a test case would leak it). Proportions are those of real cases.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from tqdm.auto import tqdm

from dermkit.core.errors import InputError
from dermkit.data.image_hash import check_max_distance, near_duplicate_paths
from dermkit.data.schema import SPLITS, check_split_name
from dermkit.data.table import read_table, update_table

GROUP_FIELDS: Mapping[str, tuple[str, ...]] = {
    "patient": ("patient_id", "lesion_id"),
    "lesion": ("lesion_id",),
    "case": (),
}
UNLABELLED = "(unlabelled)"


def check_fractions(val: float, test: float) -> None:
    """Refuse fractions that leave no room for training."""
    for name, value in (("val", val), ("test", test)):
        if not 0 <= value < 1:
            raise InputError(f"--{name} must be a fraction in [0, 1), got {value}")
    if val + test >= 1:
        raise InputError(f"--val + --test must be below 1 to leave cases for training, got {val} + {test}")


def group_ids(frame: pd.DataFrame, by: str, links: np.ndarray | None = None) -> np.ndarray:
    """Group number of every row: rows linked by a shared id of ``GROUP_FIELDS[by]``, by
    ``derived_from`` or by a ``(row, row)`` pair of ``links`` fall in one group."""
    if by not in GROUP_FIELDS:
        raise InputError(f"unknown grouping {by!r}; choose one of {', '.join(GROUP_FIELDS)}")
    count = len(frame)
    rows: list[np.ndarray] = []
    nodes: list[np.ndarray] = []
    next_node = count
    for field in GROUP_FIELDS[by]:
        codes, uniques = pd.factorize(frame[field], use_na_sentinel=True)
        present = codes >= 0
        rows.append(np.flatnonzero(present))
        nodes.append(codes[present] + next_node)
        next_node += len(uniques)
    position = pd.Series(np.arange(count), index=frame["case_id"].to_numpy())
    sources = frame["derived_from"].map(position)
    linked = sources.notna().to_numpy()
    rows.append(np.flatnonzero(linked))
    nodes.append(sources[linked].to_numpy(dtype=np.int64))
    if links is not None and len(links):
        rows.append(links[:, 0])
        nodes.append(links[:, 1])
    first, second = np.concatenate(rows), np.concatenate(nodes)
    graph = coo_matrix((np.ones(len(first)), (first, second)), shape=(next_node, next_node))
    _, labels = connected_components(graph, directed=False)
    return pd.factorize(labels[:count])[0]


def image_links(frame: pd.DataFrame, max_distance: int) -> np.ndarray:
    """``(row, row)`` pairs of cases holding near-identical images (see :mod:`dermkit.data.image_hash`)."""
    images = frame["image_paths"].reset_index(drop=True).explode()
    pairs, _ = near_duplicate_paths(images.tolist(), max_distance)
    rows = images.index.to_numpy()[pairs]
    return rows[rows[:, 0] != rows[:, 1]]


def assign_splits(
    frame: pd.DataFrame,
    *,
    by: str = "patient",
    val: float = 0.15,
    test: float = 0.15,
    seed: int = 0,
    temporal: bool = False,
    link_images: int | None = None,
) -> pd.Series:
    """The split of every row (``train``/``val``/``test``), deterministic for a given seed.

    Stratified: groups are placed one at a time, those holding the rarest classes first, each in
    the split furthest below its target for the group's rarest class (ties: its other classes,
    then overall size), so even a class of 11 cases is shared out.
    Temporal: groups are ordered by their latest date and cut into train, val, test in that
    order, so the test set is the most recent (every real case then needs a date).
    ``link_images=K`` also keeps cases whose images are within ``K`` hash bits in one group, so
    the same photo filed under two patients cannot straddle splits (it reads every image).
    """
    check_fractions(val, test)
    if link_images is not None:
        check_max_distance(link_images, "--link-images")
    links = None if link_images is None else image_links(frame, link_images)
    groups = group_ids(frame, by, links)
    synthetic = frame["synthetic"].astype(bool).to_numpy()
    pinned = np.zeros(groups.max() + 1 if len(groups) else 0, dtype=bool)
    pinned[groups[synthetic]] = True
    real = ~synthetic
    fractions = np.array([1 - val - test, val, test])
    labels = frame["diagnosis_id"].fillna(UNLABELLED).to_numpy()
    rng = np.random.default_rng(seed)
    if temporal:
        chosen = _temporal(frame, groups, real, pinned, fractions, rng)
    else:
        chosen = _stratified(groups, labels, real, pinned, fractions, rng)
    return pd.Series(np.asarray(SPLITS)[chosen[groups]], index=frame.index, name="split")


def _stratified(
    groups: np.ndarray, labels: np.ndarray, real: np.ndarray, pinned: np.ndarray,
    fractions: np.ndarray, rng: np.random.Generator,
) -> np.ndarray:
    """Split index per group, greedily filling per-class targets (see :func:`assign_splits`)."""
    classes, class_of_row = np.unique(labels, return_inverse=True)
    counts = (
        pd.DataFrame({"group": groups[real], "cls": class_of_row[real]})
        .groupby(["group", "cls"]).size().reset_index(name="n")
    )
    totals = np.bincount(counts["cls"], weights=counts["n"], minlength=len(classes))
    current = np.zeros((len(SPLITS), len(classes)))
    chosen = np.zeros(len(pinned), dtype=np.int64)  # pinned groups stay in train (index 0)
    free = np.flatnonzero(~pinned)
    starts = np.flatnonzero(np.diff(counts["group"].to_numpy(), prepend=-1))
    members: dict[int, tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]] = dict(zip(  # group -> classes, counts
        counts["group"].to_numpy()[starts].tolist(),
        zip(np.split(counts["cls"].to_numpy(), starts[1:]), np.split(counts["n"].to_numpy(dtype=float), starts[1:])),
    ))
    for group in np.flatnonzero(pinned).tolist():
        if group in members:
            current[0, members[group][0]] += members[group][1]
    rarity = np.array([totals[members[g][0]].min() if g in members else np.inf for g in free.tolist()])
    size = np.array([members[g][1].sum() if g in members else 0.0 for g in free.tolist()])
    order = free[np.lexsort((rng.random(len(free)), -size, rarity))]
    target = fractions[:, None] * totals[None, :]
    open_splits = fractions > 0
    scale = np.where(totals > 0, totals, 1)
    for group in tqdm(order, desc="assigning groups", unit="group", leave=False):
        if group not in members:
            continue  # a group of synthetic cases only; pinned anyway
        cls, n = members[group]
        need = target - current
        rarest = need[:, cls[np.argmin(totals[cls])]]
        gain = (need[:, cls] / scale[cls]) @ n
        overall = need.sum(axis=1)
        ranked = np.lexsort((rng.random(len(SPLITS)), overall, gain, rarest, open_splits))
        chosen[group] = ranked[-1]
        current[ranked[-1], cls] += n
    return chosen


def _temporal(
    frame: pd.DataFrame, groups: np.ndarray, real: np.ndarray, pinned: np.ndarray,
    fractions: np.ndarray, rng: np.random.Generator,
) -> np.ndarray:
    """Split index per group, cutting groups ordered by their latest date at the requested shares."""
    dates = pd.to_datetime(frame["date"])
    undated = real & dates.isna().to_numpy()
    if undated.any():
        first = int(np.flatnonzero(undated)[0])
        raise InputError(
            f"--temporal needs a date on every real case; {int(undated.sum())} lack one",
            row=first + 1, field="date",
        )
    latest = pd.Series(dates.to_numpy()[real]).groupby(groups[real]).max()
    size = np.bincount(groups[real], minlength=len(pinned)).astype(float)
    free = np.array([g for g in latest.index if not pinned[g]], dtype=np.int64)
    order = free[np.lexsort((rng.random(len(free)), latest.loc[free].to_numpy()))]
    before = size[pinned].sum() + np.concatenate([[0.0], np.cumsum(size[order])[:-1]])
    middle = (before + size[order] / 2) / max(size.sum(), 1)
    chosen = np.zeros(len(pinned), dtype=np.int64)
    chosen[order] = np.searchsorted(np.cumsum(fractions)[:-1], middle, side="right")
    return chosen


def stratified_sample(frame: pd.DataFrame, n: int, seed: int = 0) -> pd.DataFrame:
    """About ``n`` rows keeping each diagnosis' share (rounded per class), in table order.

    Sampling cases of an already split table keeps the split leak-free: no group gains a split.
    """
    if n >= len(frame):
        return frame.reset_index(drop=True)
    share = n / len(frame)
    kept = frame.groupby(frame["diagnosis_id"].fillna(""), group_keys=False).sample(frac=share, random_state=seed)
    return frame.loc[sorted(kept.index)].reset_index(drop=True)


def split_counts(frame: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Cases per split per class (``(unlabelled)`` for cases without a diagnosis)."""
    labels = frame["diagnosis_id"].fillna(UNLABELLED)
    out: dict[str, dict[str, int]] = {}
    for split in SPLITS:
        in_split = labels[frame["split"] == split]
        out[split] = {str(k): int(v) for k, v in in_split.value_counts().sort_index().items()}
    return out


def format_split_counts(counts: Mapping[str, Mapping[str, int]]) -> str:
    """A plain-text table: one row per class, one column per split, totals last."""
    classes = sorted({c for per_class in counts.values() for c in per_class})
    width = max([len("class"), len("total"), *(len(c) for c in classes)])
    lines = [f"{'class':<{width}} " + " ".join(f"{s:>7}" for s in counts)]
    for cls in [*classes, "total"]:
        cells = [sum(v.values()) if cls == "total" else v.get(cls, 0) for v in counts.values()]
        lines.append(f"{cls:<{width}} " + " ".join(f"{n:>7}" for n in cells))
    return "\n".join(lines)


def split_table(
    table_dir: str | Path, *, by: str = "patient", val: float = 0.15, test: float = 0.15,
    seed: int = 0, temporal: bool = False, link_images: int | None = None,
) -> dict[str, Any]:
    """Assign the ``split`` column of a case table in place (atomically); return the counts.

    The settings are recorded in the manifest, so a split can be reproduced.
    """
    frame = read_table(table_dir)
    try:
        frame["split"] = assign_splits(frame, by=by, val=val, test=test, seed=seed, temporal=temporal,
                                       link_images=link_images)
    except InputError as error:  # name the table, keeping the row and field
        raise InputError(error.message, file=error.file or table_dir, row=error.row, field=error.field) from error
    settings = {"by": by, "val": val, "test": test, "seed": seed, "temporal": temporal, "link_images": link_images}
    update_table(frame, table_dir, split=settings)
    return {"table": str(table_dir), **settings, "cases": len(frame), "counts": split_counts(frame)}


def set_all_splits(table_dir: str | Path, split: str) -> dict[str, Any]:
    """Put every case of a table in ``split`` (in place, atomically): "this whole table is a test set".

    No grouping is needed, since nothing is shared out; synthetic cases may only go to train (an
    image derived from a test case would leak it), so a table holding them cannot become val or test.
    """
    check_split_name(split, "--all")
    frame = read_table(table_dir)
    synthetic = frame["synthetic"].astype(bool)
    if split != "train" and synthetic.any():
        first = int(np.flatnonzero(synthetic.to_numpy())[0])
        raise InputError(f"{int(synthetic.sum())} synthetic cases may only be in train, not {split}",
                         file=table_dir, row=first + 1, field="synthetic")
    frame["split"] = split
    update_table(frame, table_dir, split={"all": split})
    return {"table": str(table_dir), "all": split, "cases": len(frame), "counts": split_counts(frame)}
