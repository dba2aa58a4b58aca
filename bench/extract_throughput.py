"""Images per second of dermkit's feature extraction against a plain single-process fp32 loop.

Both embed the same images with the same model in one run: the baseline opens each image with
PIL, applies the model's own eval transform, stacks contiguous fp32 batches and calls
``encode_image`` under ``torch.no_grad``; dermkit's :func:`extract_image_features` decodes in
DataLoader workers, runs channels-last under ``inference_mode`` and bf16 autocast where the CPU
supports it. The cache is bypassed (a fresh cache directory), so this measures extraction itself.
Both get one untimed warm-up batch. The embeddings must agree (cosine ≥ 0.99 with bf16).

Images: the first N of ../shared/data/ham10000 when present, else synthetic blobs (saying so).

    python bench/extract_throughput.py [--images 512] [--batch-size 64] [--model NAME]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from dermkit.core.atomic import atomic_write_text
from dermkit.evaluate.features import (
    BF16_MIN_COSINE,
    bf16_supported,
    default_num_workers,
    extract_image_features,
    l2_normalize,
)
from dermkit.models import list_models, load_model

ROOT = Path(__file__).resolve().parents[1]
HAM_IMAGES = ROOT.parent / "shared" / "data" / "ham10000" / "images"
RESULT = ROOT / "bench" / "results" / "extract_throughput.json"


def image_paths(n: int, scratch: Path) -> tuple[list[str], str]:
    """``n`` real HAM10000 images when available, else ``n`` synthetic 224×224 JPEGs."""
    if HAM_IMAGES.is_dir():
        paths = sorted(str(p) for p in HAM_IMAGES.glob("*.jpg"))[:n]
        if len(paths) == n:
            return paths, f"ham10000 ({HAM_IMAGES})"
    rng = np.random.default_rng(0)
    paths = []
    for index in range(n):
        pixels = rng.integers(0, 255, size=(224, 224, 3), dtype=np.uint8)
        path = scratch / f"synthetic_{index:04d}.jpg"
        Image.fromarray(pixels).save(path, quality=90)
        paths.append(str(path))
    return paths, "synthetic (ham10000 absent)"


def baseline(model: torch.nn.Module, transform, paths: list[str], batch_size: int) -> np.ndarray:
    """The plain loop: PIL decode, transform, stack, fp32 forward, one batch at a time."""
    rows = []
    with torch.no_grad():
        for start in range(0, len(paths), batch_size):
            batch = torch.stack([transform(Image.open(p).convert("RGB")) for p in paths[start:start + batch_size]])
            rows.append(model.encode_image(batch.contiguous()).float().numpy())
    return l2_normalize(np.concatenate(rows))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--model", default="dermlip-lite" if "dermlip-lite" in list_models() else "tiny-clip")
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()

    loaded = load_model(args.model)
    with tempfile.TemporaryDirectory() as scratch:
        paths, source = image_paths(args.images, Path(scratch))
        warm_up = paths[: args.batch_size]
        baseline(loaded.model, loaded.preprocess_eval, warm_up, args.batch_size)
        start = time.perf_counter()
        reference = baseline(loaded.model, loaded.preprocess_eval, paths, args.batch_size)
        baseline_seconds = time.perf_counter() - start

        table = pd.DataFrame({"case_id": [f"img{i}" for i in range(len(paths))], "image_paths": [[p] for p in paths]})
        common = {"batch_size": args.batch_size, "progress": False}
        extract_image_features(loaded, table.iloc[: args.batch_size], cache_dir=Path(scratch) / "warm", **common)
        start = time.perf_counter()
        ours = extract_image_features(loaded, table, cache_dir=Path(scratch) / "cache", **common)
        ours_seconds = time.perf_counter() - start

    cosine = np.sum(reference * ours.embeddings, axis=1)
    result = {
        "images": len(paths),
        "image_source": source,
        "model": args.model,
        "baseline_images_per_s": round(len(paths) / baseline_seconds, 2),
        "dermkit_images_per_s": round(len(paths) / ours_seconds, 2),
        "ratio": round(baseline_seconds / ours_seconds, 3),
        "target_ratio": 2.5,
        "cosine_min": round(float(cosine.min()), 5),
        "cosine_mean": round(float(cosine.mean()), 5),
        "settings": {
            "batch_size": args.batch_size,
            "dermkit_precision": ours.meta["precision_used"],
            "dermkit_num_workers": default_num_workers(),
            "torch_threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(),
            "cpu_bf16": bf16_supported(torch.device("cpu")),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "machine": platform.machine(),
            "load_average_1min": round(os.getloadavg()[0], 2),
        },
    }
    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    threshold = BF16_MIN_COSINE if ours.meta["precision_used"] == "bf16" else 0.9999
    if result["cosine_min"] < threshold:
        print(f"embeddings disagree: min cosine {result['cosine_min']} < {threshold}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
