"""Benchmark: images/s through tar shards vs loose files, same decode and transforms, one run.

The real HAM10000 sample (5,984 JPEGs) is imported as a case table and sharded (~1,000 samples
per tar). Loose files go through the plain PIL dataset everyone writes first (``Image.open``,
``convert("RGB")``, transform, map-style with a shuffled sampler); shards through
``dermkit.data.shard_loader.ShardDataset`` (streamed tars, shuffle buffer). Both use the same
torchvision transform and the same DataLoader settings. Two regimes are timed:

- warm: after one untimed pass, everything is in the page cache (the loaders alone compared);
- cold: before every timed pass the files' pages are dropped (``posix_fadvise DONTNEED``), as on
  a first epoch or a dataset larger than memory. The loose files are *copies* in a temporary
  directory, so the shared data's cache (which other jobs use) is left alone.

    OMP_NUM_THREADS=1 python bench/shard_loading.py [--workers 2] [--batch-size 64] [--passes 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from _real_sample import ham_table
from dermkit.core.atomic import atomic_write_text
from dermkit.core.precision import cpu_capability
from dermkit.data.shard_loader import ShardDataset
from dermkit.data.shards import write_shards

RESULT = Path(__file__).resolve().parent / "results" / "shard_loading.json"
TRANSFORM = transforms.Compose([transforms.Resize(112), transforms.CenterCrop(112), transforms.ToTensor()])


class LooseFiles(Dataset):
    """The baseline: one file open and decode per item."""

    def __init__(self, paths: list[str]) -> None:
        self.paths = paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, item: int) -> torch.Tensor:
        with Image.open(self.paths[item]) as image:
            return TRANSFORM(image.convert("RGB"))


def _images_only(batch: list[dict]) -> torch.Tensor:
    return torch.stack([sample["image"] for sample in batch])


def evict(paths: list[Path]) -> None:
    """Drop the files' pages from the page cache (no root needed; only these files)."""
    for path in paths:
        with open(path, "rb") as handle:
            os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def images_per_s(loader: DataLoader, passes: int, cold: list[Path] | None = None) -> float:
    """Best of ``passes`` timed passes: after a warm-up pass, or each after evicting ``cold``."""
    rates = []
    for attempt in range(passes + (cold is None)):
        if cold is not None:
            evict(cold)
        start, seen = time.perf_counter(), 0
        for batch in loader:
            seen += len(batch)
        if attempt or cold is not None:
            rates.append(seen / (time.perf_counter() - start))
    return max(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--passes", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as work:
        table, frame = ham_table(Path(work))
        start = time.perf_counter()
        manifest = write_shards(table, Path(work) / "shards", progress=False)
        shard_s = time.perf_counter() - start
        copies = Path(work) / "loose"
        copies.mkdir()
        paths = [shutil.copy(case_paths[0], copies) for case_paths in frame["image_paths"]]
        tars = sorted((Path(work) / "shards").glob("*.tar"))
        loose = DataLoader(LooseFiles(paths), batch_size=args.batch_size, shuffle=True, num_workers=args.workers,
                           generator=torch.Generator().manual_seed(0))
        shards = DataLoader(ShardDataset(Path(work) / "shards", TRANSFORM, seed=0), batch_size=args.batch_size,
                            num_workers=args.workers, collate_fn=_images_only)
        loose_rate = images_per_s(loose, args.passes)
        shard_rate = images_per_s(shards, args.passes)
        cold_loose = images_per_s(loose, args.passes, cold=[Path(p) for p in paths])
        cold_shard = images_per_s(shards, args.passes, cold=tars)
        tar_bytes = sum(p.stat().st_size for p in tars)
    result = {
        "cpu_capability": cpu_capability(),  # no model runs: decoding and transforms only
        "images": len(paths),
        "shards": len(manifest["shards"]),
        "shard_images_per_s": round(shard_rate, 1),
        "baseline": {"method": "map-style dataset of loose JPEG files (PIL open + convert), shuffled sampler",
                     "images_per_s": round(loose_rate, 1)},
        "ratio": round(shard_rate / loose_rate, 3),
        "ratio_note": "shards / loose files, images per second, warm page cache, best of the timed passes",
        "cold": {"shard_images_per_s": round(cold_shard, 1), "baseline_images_per_s": round(cold_loose, 1),
                 "ratio": round(cold_shard / cold_loose, 3),
                 "note": "page cache dropped for the files before each timed pass (posix_fadvise DONTNEED)"},
        "write_shards_seconds": round(shard_s, 2),
        "tar_megabytes": round(tar_bytes / 2**20, 1),
        "transform": "Resize(112) + CenterCrop(112) + ToTensor, identical for both",
        "settings": {"workers": args.workers, "batch_size": args.batch_size, "timed_passes": args.passes,
                     "cpu_count": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version(),
                     "load_average_1min": round(os.getloadavg()[0], 2)},
    }
    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
