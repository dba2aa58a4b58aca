"""Near-duplicate clusters of cases (images and captions), and splits that keep each cluster whole.

Scraped image–text sets repeat themselves: the same photo resized, recompressed or mirrored on
another site, the same caption pasted under several uploads. Two cases are linked when

- any of their images are within ``max_distance`` bits of the 256-bit perceptual hash of
  :mod:`dermkit.data.image_hash`, comparing each image also with the *mirror* of the other (a
  DCT hash does not survive a flip, so each image is hashed twice, plain and mirrored), or
- their captions are equal after :func:`dermkit.ontology.normalize_term`, for captions of at
  least :data:`MIN_CAPTION_WORDS` words (short ones such as "melanoma" are shared by unrelated
  cases).

Clusters are the connected components of these links (the partition a union-find builds,
computed by scipy). A split that keeps each cluster in one split is the ordinary leak-free
split (:func:`dermkit.data.splits.assign_splits`) run on a table whose ``lesion_id`` is replaced
by the component of "same lesion or same cluster", so the patient, lesion and synthetic rules
all still hold. The clusters are written beside the table as ``dedup_clusters.parquet``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from tqdm.auto import tqdm

from dermkit.core.atomic import atomic_path
from dermkit.data.image_hash import HASH_WORDS, near_duplicate_pairs, phash
from dermkit.data.images import open_image
from dermkit.data.splits import assign_splits, split_counts
from dermkit.data.table import read_table, update_table
from dermkit.ontology import normalize_term

CLUSTERS_FILE = "dedup_clusters.parquet"
DEFAULT_MAX_DISTANCE = 20  # of 256 bits, as dermkit.data.leaks uses for "the same photo"
MIN_CAPTION_WORDS = 6
_HASH_SIDE = 64  # phash reduces to 64×64 grey; mirroring that is mirroring the image


@dataclass(frozen=True)
class Clusters:
    """Cluster number of every case row (0.. by first row; singletons get their own) and the links."""

    labels: np.ndarray
    image_pairs: int
    caption_pairs: int

    @property
    def duplicated_rows(self) -> int:
        """Rows that share their cluster with another row."""
        sizes = np.bincount(self.labels)
        return int((sizes[self.labels] > 1).sum())


def hash_images_and_mirrors(
    paths: Sequence[str | Path], *, workers: int | None = None, progress: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """``(hashes, mirrored)``: the perceptual hash of each image and of its left–right mirror."""
    workers = workers or min(8, os.cpu_count() or 1)
    plain = np.empty((len(paths), HASH_WORDS), dtype=np.uint64)
    mirror = np.empty_like(plain)

    def both(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
        small = open_image(path).convert("L").resize((_HASH_SIDE, _HASH_SIDE), Image.Resampling.LANCZOS)
        return phash(small), phash(small.transpose(Image.Transpose.FLIP_LEFT_RIGHT))

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for row, (h, m) in enumerate(tqdm(pool.map(both, paths), total=len(paths), desc="hashing", unit="img",
                                          disable=not progress, leave=False)):
            plain[row], mirror[row] = h, m
    return plain, mirror


def image_duplicate_pairs(hashes: np.ndarray, mirrored: np.ndarray, max_distance: int) -> np.ndarray:
    """``(m, 2)`` image index pairs ``i < j`` that are near-duplicates, directly or mirrored."""
    count = len(hashes)
    pairs, _ = near_duplicate_pairs(np.concatenate([hashes, mirrored]), max_distance)
    pairs = pairs % max(count, 1)  # a mirror's row maps back to its image
    pairs = np.sort(pairs, axis=1)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    return np.unique(pairs, axis=0) if len(pairs) else pairs.reshape(0, 2)


def caption_keys(captions: Sequence[str | None]) -> np.ndarray:
    """64-bit key of each normalised caption; 0 for captions too short to count as evidence."""
    keys = np.zeros(len(captions), dtype=np.uint64)
    for row, caption in enumerate(captions):
        text = normalize_term(caption) if isinstance(caption, str) else ""
        if text.count(" ") + 1 >= MIN_CAPTION_WORDS:
            keys[row] = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") or 1
    return keys


def _components(count: int, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Component of each node, numbered by first appearance (node 0's component is 0)."""
    graph = coo_matrix((np.ones(len(first)), (first, second)), shape=(count, count))
    _, labels = connected_components(graph, directed=False)
    return pd.factorize(labels)[0]


def _same_value_pairs(values: np.ndarray, present: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edges linking each present row to the first row with the same value (a star per value)."""
    rows = np.flatnonzero(present)
    codes, _ = pd.factorize(values[rows])
    first = np.full(codes.max() + 1 if len(codes) else 0, -1, dtype=np.int64)
    order = np.arange(len(codes))[::-1]
    first[codes[order]] = rows[order]
    return rows, first[codes]


def cluster_cases(
    frame: pd.DataFrame, *, max_distance: int = DEFAULT_MAX_DISTANCE, captions: bool = True,
    workers: int | None = None, progress: bool = True,
) -> Clusters:
    """Near-duplicate clusters of the rows of a case table (see the module docstring)."""
    images = frame[["image_paths"]].assign(row=np.arange(len(frame))).explode("image_paths", ignore_index=True)
    images = images[images["image_paths"].notna()]
    paths, which = np.unique(images["image_paths"].astype(str).to_numpy(), return_inverse=True)
    hashes, mirrored = hash_images_and_mirrors(list(paths), workers=workers, progress=progress)
    image_pairs = image_duplicate_pairs(hashes[which], mirrored[which], max_distance)
    image_rows = images["row"].to_numpy(dtype=np.int64)
    first, second = [image_rows[image_pairs[:, 0]]], [image_rows[image_pairs[:, 1]]]
    caption_links = 0
    if captions:
        keys = caption_keys(frame["caption"].tolist())
        rows, anchors = _same_value_pairs(keys, keys != 0)
        linked = rows != anchors
        caption_links = int(linked.sum())
        first.append(rows[linked])
        second.append(anchors[linked])
    labels = _components(len(frame), np.concatenate(first), np.concatenate(second))
    return Clusters(labels=labels, image_pairs=len(image_pairs), caption_pairs=caption_links)


def assign_splits_keeping_clusters(frame: pd.DataFrame, labels: np.ndarray, *, by: str = "patient",
                                   **options: Any) -> pd.Series:
    """:func:`~dermkit.data.splits.assign_splits` with every cluster of ``labels`` kept in one split.

    The lesion id is replaced, on a copy, by the component of "same lesion or same cluster"
    (``by="case"`` becomes a split by that component alone), so the splitter's own grouping
    does the rest: patients, derived synthetic cases and stratification behave as usual.
    """
    count = len(frame)
    rows = [np.arange(count)]
    nodes = [count + np.asarray(labels, dtype=np.int64)]
    offset = count + (int(np.max(labels)) + 1 if count else 0)
    if by != "case":
        codes, uniques = pd.factorize(frame["lesion_id"], use_na_sentinel=True)
        present = codes >= 0
        rows.append(np.flatnonzero(present))
        nodes.append(codes[present] + offset)
        offset += len(uniques)
    component = _components(offset, np.concatenate(rows), np.concatenate(nodes))[:count]
    linked = frame.assign(lesion_id=[f"cluster-{c}" for c in component])
    return assign_splits(linked, by="lesion" if by == "case" else by, **options)


def cluster_leaks(frame: pd.DataFrame, labels: np.ndarray) -> list[dict[str, Any]]:
    """Clusters whose rows sit in more than one split, with their case ids per split."""
    present = frame.assign(cluster=labels)[frame["split"].notna()]
    spread = present.groupby("cluster")["split"].nunique()
    leaky = present[present["cluster"].isin(spread.index[spread > 1])]
    return [{"cluster": int(cluster), "splits": {str(s): sorted(ids) for s, ids in
                                                  part.groupby("split")["case_id"].agg(list).items()}}
            for cluster, part in leaky.groupby("cluster", sort=True)]


def dedup_table(
    table_dir: str | Path, *, max_distance: int = DEFAULT_MAX_DISTANCE, captions: bool = True,
    split: dict[str, Any] | None = None, workers: int | None = None, progress: bool = True,
) -> dict[str, Any]:
    """Cluster a case table, write ``dedup_clusters.parquet`` beside it and report.

    With ``split`` (the options of :func:`~dermkit.data.splits.assign_splits`: by, val, test,
    seed, temporal) the table's ``split`` column is reassigned keeping clusters whole; without,
    clusters already spread over splits are reported as leaks.
    """
    table_dir = Path(table_dir)
    frame = read_table(table_dir)
    clusters = cluster_cases(frame, max_distance=max_distance, captions=captions, workers=workers,
                             progress=progress)
    sizes = np.bincount(clusters.labels)
    sidecar = pd.DataFrame({"case_id": frame["case_id"].to_numpy(), "cluster": clusters.labels,
                            "cluster_size": sizes[clusters.labels]})
    with atomic_path(table_dir / CLUSTERS_FILE) as tmp:
        sidecar.to_parquet(tmp, index=False)
    summary: dict[str, Any] = {
        "table": str(table_dir), "cases": len(frame), "clusters": int((sizes > 1).sum()),
        "duplicated_cases": clusters.duplicated_rows, "image_pairs": clusters.image_pairs,
        "caption_pairs": clusters.caption_pairs, "max_distance": max_distance,
    }
    if split is not None:
        frame["split"] = assign_splits_keeping_clusters(frame, clusters.labels, **split)
        update_table(frame, table_dir, split={**split, "dedup": {"max_distance": max_distance,
                                                                  "captions": captions}})
        summary["counts"] = split_counts(frame)
    summary["leaks"] = cluster_leaks(frame, clusters.labels) if frame["split"].notna().any() else []
    return summary
