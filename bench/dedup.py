"""Benchmark: near-duplicate clustering of 100,000 images with planted resized/recompressed/mirrored copies.

Distinct "originals" are random crops of the real HAM10000 and PAD-UFES-20 images (several per
photo, at different positions and quarter-turns, shrunk to 64 px); planted duplicates are copies
of originals that were resized, re-encoded as JPEG, mirrored, or all three. Everything is
generated into a temporary directory (on /dev/shm where it exists, else $DERMKIT_BENCH_TMP or the
system default). Recall is the share of planted copies that end in their
original's cluster; false merges count originals clustered with a different original.

Baselines in the same run: the plain pipeline of ``dermkit data check-leaks`` (256-bit pHash,
no mirror hashes: ``image_hash.hash_images`` + ``duplicate_clusters``) and exact file hashes (MD5).

    OMP_NUM_THREADS=1 python bench/dedup.py [--images 100000] [--planted 20000]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from _real_sample import SHARED_DATA
from dermkit.core.atomic import atomic_write_text
from dermkit.core.precision import cpu_capability
from dermkit.curate.dedup import DEFAULT_MAX_DISTANCE, cluster_cases
from dermkit.data.image_hash import duplicate_clusters, hash_images

RESULT = Path(__file__).resolve().parent / "results" / "dedup.json"
SIDE = 64
KINDS = ("resized", "recompressed", "mirrored", "all_three")


def _originals(task: tuple[Path, str, list[int], int, int]) -> list[dict]:
    """Crops of one source photo (decoded once): crop ``k`` sits at a seeded position, turned k quarters."""
    folder, source, numbers, sources, seed = task
    image = Image.open(source).convert("RGB")
    side = int(min(image.size) * 0.6)
    rows = []
    for number in numbers:
        rng = np.random.default_rng((seed, 0, number))
        x, y = rng.integers(0, image.width - side + 1), rng.integers(0, image.height - side + 1)
        crop = image.crop((x, y, x + side, y + side)).rotate(90 * (number // sources % 4))
        path = folder / f"o{number:06d}.png"
        crop.resize((SIDE, SIDE), Image.Resampling.BILINEAR).save(path, compress_level=1)
        rows.append({"path": str(path), "group": number, "kind": "original", "source": source})
    return rows


def _planted(task: tuple[Path, list[int], int, int]) -> list[dict]:
    """Altered copies of seeded originals."""
    folder, numbers, originals, seed = task
    rows = []
    for number in numbers:
        rng = np.random.default_rng((seed, 1, number))
        group = int(rng.integers(originals))
        image = Image.open(folder / f"o{group:06d}.png").convert("RGB")
        kind = KINDS[number % len(KINDS)]
        if kind in ("resized", "all_three"):
            image = image.resize((int(rng.integers(40, 57)),) * 2, Image.Resampling.BICUBIC)
        if kind in ("mirrored", "all_three"):
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        path = folder / f"p{number:06d}.{'jpg' if kind in ('recompressed', 'all_three') else 'png'}"
        image.save(path, **({"quality": int(rng.integers(50, 86))} if path.suffix == ".jpg" else {"compress_level": 1}))
        rows.append({"path": str(path), "group": group, "kind": kind, "source": None})
    return rows


def make_images(folder: Path, count: int, planted: int, seed: int) -> pd.DataFrame:
    """Write ``count`` images (``planted`` of them altered copies), in parallel; one row per image."""
    sources = sorted((SHARED_DATA / "ham10000" / "images").glob("*.jpg")) + sorted(
        (SHARED_DATA / "pad-ufes-20" / "images").glob("*.png"))
    if not sources:
        raise SystemExit(f"real images are absent under {SHARED_DATA}; this benchmark needs ../shared/data")
    originals = count - planted
    crops = [(folder, str(src), list(range(i, originals, len(sources))), len(sources), seed)
             for i, src in enumerate(sources)]
    copies = [(folder, list(range(start, min(start + 1000, planted))), originals, seed)
              for start in range(0, planted, 1000)]
    with multiprocessing.get_context("fork").Pool(os.cpu_count()) as pool:
        rows = [row for part in pool.map(_originals, crops, chunksize=16) for row in part]
        rows.sort(key=lambda row: row["group"])
        rows += [row for part in pool.map(_planted, copies) for row in part]
    return pd.DataFrame(rows)


def recall(labels: np.ndarray, images: pd.DataFrame) -> dict[str, float]:
    """Share of planted copies in the same cluster as their original, overall and per kind."""
    planted = images[images["kind"] != "original"]
    together = labels[planted.index.to_numpy()] == labels[planted["group"].to_numpy()]
    out = {"all": round(float(together.mean()), 4)}
    for kind in KINDS:
        out[kind] = round(float(together[(planted["kind"] == kind).to_numpy()].mean()), 4)
    return out


def false_merges(labels: np.ndarray, images: pd.DataFrame) -> dict[str, int]:
    """Originals whose cluster holds another original: any, and one cropped from another photo.

    Two crops of one photo at nearby positions (or a photo HAM10000 holds twice) can be true
    near-duplicates, so only merges across source photos are certainly wrong.
    """
    originals = images[images["kind"] == "original"]
    clusters = pd.DataFrame({"cluster": labels[originals.index.to_numpy()], "source": originals["source"].to_numpy()})
    sizes = clusters["cluster"].map(clusters["cluster"].value_counts())
    sources = clusters["cluster"].map(clusters.groupby("cluster")["source"].nunique())
    return {"any": int((sizes > 1).sum()), "across_source_photos": int((sources > 1).sum())}


def labels_from_clusters(clusters: list[np.ndarray], count: int) -> np.ndarray:
    labels = np.arange(count)
    for members in clusters:
        labels[members] = members[0]
    return labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--planted", type=int, default=20_000)
    parser.add_argument("--max-distance", type=int, default=DEFAULT_MAX_DISTANCE)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()
    # tmpfs where there is one: 100k small files written and deleted on ext4 with discard cost minutes
    scratch = os.environ.get("DERMKIT_BENCH_TMP") or ("/dev/shm" if Path("/dev/shm").is_dir() else None)
    with tempfile.TemporaryDirectory(dir=scratch) as work:
        start = time.perf_counter()
        images = make_images(Path(work), args.images, args.planted, args.seed)
        generate_s = time.perf_counter() - start
        paths = images["path"].tolist()

        start = time.perf_counter()
        frame = pd.DataFrame({"image_paths": [[p] for p in paths], "caption": None})
        ours = cluster_cases(frame, max_distance=args.max_distance, captions=False, progress=False)
        ours_s = time.perf_counter() - start

        start = time.perf_counter()
        plain = labels_from_clusters(duplicate_clusters(hash_images(paths, progress=False), args.max_distance),
                                     len(paths))
        plain_s = time.perf_counter() - start

        start = time.perf_counter()
        digests = [hashlib.md5(Path(p).read_bytes()).hexdigest() for p in paths]
        md5 = pd.factorize(pd.Series(digests))[0]
        md5_s = time.perf_counter() - start

    result = {
        "cpu_capability": cpu_capability(),  # no model runs: hashing is numpy and Pillow
        "images": len(images),
        "planted": int((images["kind"] != "original").sum()),
        "seconds": round(ours_s, 2),
        "images_per_s": round(len(images) / ours_s),
        "recall": recall(ours.labels, images),
        # ours over the plain pHash baseline: recall of planted duplicates (higher is better)
        "ratio": round(recall(ours.labels, images)["all"] / max(recall(plain, images)["all"], 1e-9), 3),
        "false_merges": false_merges(ours.labels, images),
        "image_pairs": ours.image_pairs,
        "max_distance": args.max_distance,
        "method": "256-bit DCT hash of each image and its mirror, multi-index Hamming search, connected components",
        "baseline": {
            "phash_no_mirror": {"seconds": round(plain_s, 2), "recall": recall(plain, images),
                                "false_merges": false_merges(plain, images),
                                "method": "dermkit.data.image_hash.hash_images + duplicate_clusters"},
            "md5_exact": {"seconds": round(md5_s, 2), "recall": recall(md5, images),
                          "false_merges": false_merges(md5, images)},
        },
        "data": {"source": "random 60% crops (any quarter-turn) of HAM10000 + PAD-UFES-20 images, 64 px PNG",
                 "variants": "resized to 40-56 px; JPEG q50-85; left-right mirror; all three",
                 "generate_seconds": round(generate_s, 1)},
        "settings": {"seed": args.seed, "hash_threads": min(8, os.cpu_count() or 1), "cpu_count": os.cpu_count(),
                     "python": platform.python_version(), "load_average_1min": round(os.getloadavg()[0], 2)},
    }
    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
