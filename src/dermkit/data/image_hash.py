"""Perceptual image hashes and fast near-duplicate search, for leak checks and dedup.

The hash is ``imagehash``'s pHash at ``hash_size=16``: a 256-bit DCT hash, the 16×16 lowest
frequencies of a 64×64 grey image, one bit per frequency, set when above their median. It survives resizing and re-encoding (a 224-pixel photo
saved at 150 pixels as JPEG quality 70 moves at most 16 bits), while no two of HAM10000's 5,984
photos are within 32 bits. (The common 64-bit pHash is too coarse here: a dark round lesion
centred on pale skin looks alike at 8×8 frequencies, and different lesions came within 4 bits.)

Finding every pair within Hamming distance ``K`` uses multi-index hashing: the bits are cut into
bands and, by pigeonhole, two hashes within ``K`` bits differ by at most ``K // bands`` bits on
some band, so only hashes whose band values are that close are ever compared. The cost follows
the candidates, not n², which keeps 100,000 images tractable for the intended ``K`` (≤ ~32).
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import imagehash
import numpy as np
from PIL import Image
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from tqdm.auto import tqdm

from dermkit.core.errors import InputError
from dermkit.data.images import open_image

_LOW = 16  # imagehash's hash_size: the 16×16 lowest frequencies make the bits
HASH_BITS = _LOW * _LOW
HASH_WORDS = HASH_BITS // 64


def phash(image: Image.Image) -> np.ndarray:
    """The 256-bit DCT hash of an image, as ``HASH_WORDS`` uint64 words (bits in row-major order)."""
    return np.packbits(imagehash.phash(image, hash_size=_LOW).hash.ravel()).view(np.uint64)


def _hash_file(path: str | Path) -> np.ndarray:
    return phash(open_image(path))


def hash_images(paths: Sequence[str | Path], *, workers: int | None = None, progress: bool = True) -> np.ndarray:
    """Hashes of every image, in order: a ``(len(paths), HASH_WORDS)`` uint64 array.

    Unreadable images raise ``InputError``. Threads suffice: PIL decodes and resizes with the GIL
    released.
    """
    workers = workers or min(8, os.cpu_count() or 1)
    out = np.empty((len(paths), HASH_WORDS), dtype=np.uint64)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = pool.map(_hash_file, paths)
        for row, value in enumerate(tqdm(results, total=len(paths), desc="hashing images", unit="img",
                                         disable=not progress, leave=False)):
            out[row] = value
    return out


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Number of differing bits between hashes (over the last axis, the words of one hash)."""
    return np.bitwise_count(np.bitwise_xor(a, b)).sum(axis=-1, dtype=np.int64)


def check_max_distance(max_distance: int, flag: str) -> None:
    """Refuse a user's distance the hash cannot express, naming the option it came from."""
    if not 0 <= max_distance < HASH_BITS:
        raise InputError(f"{flag} must be in 0–{HASH_BITS - 1} (bits of a {HASH_BITS}-bit hash), got {max_distance}")


def _band_count(bits: int, count: int, max_distance: int) -> int:
    """How many bands to cut the hash into (each is searched within ``max_distance // bands``).

    With ``bands`` bands searched within ``radius = max_distance // bands`` bits each, pigeonhole
    still guarantees every pair is found. Narrow bands (many of them) mean few probes but crowded
    buckets; wide bands the opposite. Pick the cheapest by a simple count of probes plus
    candidates, so the search stays fast from a hundred to a million hashes.
    """

    def cost(bands: int) -> float:
        width, radius = -(-bits // bands), max_distance // bands
        probes = sum(math.comb(width, r) for r in range(radius + 1))
        return bands * probes * (1 + count / 2.0**width)

    fewest = -(-bits // 64)  # band keys are uint64
    return min(range(fewest, max(fewest, min(bits, max_distance + 1)) + 1), key=cost)


def _flip_masks(width: int, radius: int) -> np.ndarray:
    """Every ``width``-bit mask with at most ``radius`` bits set (0 first)."""
    masks = [sum(1 << bit for bit in chosen)
             for r in range(radius + 1) for chosen in itertools.combinations(range(width), r)]
    return np.array(masks, dtype=np.uint64)


def _runs_matching(sorted_keys: np.ndarray, probes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(probe index, sorted position) of every sorted key equal to a probe."""
    low = np.searchsorted(sorted_keys, probes, side="left")
    length = np.searchsorted(sorted_keys, probes, side="right") - low
    hit = np.flatnonzero(length)
    source = np.repeat(hit, length[hit])
    first_of_run = np.repeat(np.cumsum(length[hit]) - length[hit], length[hit])
    return source, np.repeat(low[hit], length[hit]) + np.arange(len(source)) - first_of_run


def near_duplicate_pairs(hashes: np.ndarray, max_distance: int) -> tuple[np.ndarray, np.ndarray]:
    """Every pair ``i < j`` of rows of ``hashes`` within ``max_distance`` differing bits.

    ``hashes`` is ``(n, words)`` uint64 (as from :func:`hash_images`) or ``(n,)`` for one word.
    Returns ``(pairs, distances)``: an ``(m, 2)`` int64 array sorted by ``(i, j)`` and the ``m``
    distances. Equal hashes (the same file twice, say) are pairs at distance 0.
    """
    values = np.asarray(hashes, dtype=np.uint64)
    if values.ndim == 1:
        values = values[:, None]
    bits = np.unpackbits(values.view(np.uint8), axis=1)
    if not 0 <= max_distance < bits.shape[1]:
        raise ValueError(f"max_distance must be in 0–{bits.shape[1] - 1}, got {max_distance}")
    count = len(values)
    bands = _band_count(bits.shape[1], count, max_distance)
    radius = max_distance // bands
    found = [np.empty(0, dtype=np.int64)]
    for band in np.array_split(np.arange(bits.shape[1]), bands):
        weights = np.uint64(1) << np.arange(len(band), dtype=np.uint64)
        keys = (bits[:, band].astype(np.uint64) * weights).sum(axis=1, dtype=np.uint64)
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        for mask in _flip_masks(len(band), radius):
            source, position = _runs_matching(sorted_keys, keys ^ mask)
            target = order[position]
            keep = source < target
            first, second = source[keep], target[keep]
            close = hamming(values[first], values[second]) <= max_distance
            found.append(first[close] * count + second[close])
    codes = np.unique(np.concatenate(found))
    pairs = np.stack([codes // max(count, 1), codes % max(count, 1)], axis=1)
    return pairs, hamming(values[pairs[:, 0]], values[pairs[:, 1]])


def near_duplicate_paths(
    paths: Sequence[str | Path], max_distance: int, *, workers: int | None = None, progress: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`near_duplicate_pairs` of images given by path, indexing ``paths``.

    Each distinct file is read once; a path listed twice is a pair at distance 0.
    """
    distinct, which = np.unique(np.asarray([str(p) for p in paths], dtype=str), return_inverse=True)
    hashes = hash_images(list(distinct), workers=workers, progress=progress)
    return near_duplicate_pairs(hashes[which.ravel()], max_distance)


def duplicate_clusters(hashes: np.ndarray, max_distance: int) -> list[np.ndarray]:
    """Groups (size ≥ 2) of images linked by chains of near-duplicate pairs, for deduplication.

    Linkage is transitive (single linkage), so two members of one cluster may be further apart
    than ``max_distance``; each cluster's indices are sorted, clusters by their first index.
    Identical hashes are merged before the search, so a thousand copies of one image cost one.
    """
    distinct, inverse = np.unique(np.asarray(hashes, dtype=np.uint64), axis=0, return_inverse=True)
    pairs, _ = near_duplicate_pairs(distinct, max_distance)
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(len(distinct), len(distinct)))
    labels = connected_components(graph, directed=False)[1][inverse.ravel()]
    order = np.argsort(labels, kind="stable")
    groups = np.split(order, np.flatnonzero(np.diff(labels[order])) + 1) if len(labels) else []
    return sorted((g for g in groups if len(g) > 1), key=lambda g: int(g[0]))
