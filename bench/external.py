"""Generalisation: the two HAM10000 arms of ``ham_recipe.py`` scored once on the external isic-archive set.

Both arms (the plain timm loop and dermkit's ``train_ddx`` recipe, ``ham_recipe.train_baseline`` /
``ham_recipe.train_dermkit``) train on HAM10000's lesion-grouped split (seed 0: 70/15/15) with the
same wall-time budget and image size. Every choice is made on HAM validation only:

- checkpoint: the dermkit arm keeps the epoch of best validation balanced accuracy (``--select-on``);
  the plain loop keeps its last weights, as a user's loop would;
- test-time views: the dermkit arm's count of best validation balanced accuracy (``choose_tta``),
  the plain loop's plain view;
- melanoma operating point: ``P(melanoma) >= t`` with t the highest threshold whose *validation*
  melanoma sensitivity is at least ``--target-sensitivity`` (0.80; ``metrics.choose_threshold``,
  rule ``sensitivity``), applied unchanged to the HAM test split and to the external set.

Then, and only then, ``../shared/data/isic-archive`` (928 dermoscopy images, none of HAM10000's
images or lesions) is imported as a test set as a whole (``split="test"``) and each arm scores it
once. The structure guarantees the external set chooses nothing: its table does not exist in the
work folder (a stale one is removed first) until both arms are frozen (:class:`FrozenArm`), which
an assertion checks before the import. Per arm the JSON reports, with 95 % bootstrap intervals
from dermkit's metric collection (``score_predictions``): balanced accuracy over the seven classes
the model knows (cases outside its label space, the squamous cell carcinomas, excluded and
counted), melanoma AUROC, melanoma sensitivity and specificity at the validation threshold, and
the same on the internal HAM test split; ``ratio`` = dermkit / plain loop external balanced
accuracy, and the paired bootstrap of their external difference. ``--recipes-tried`` records how
many recipes were compared on HAM validation to pick the dermkit default (the user's count: a
default picked among many is more optimistic on HAM than on the external set).

    python bench/external.py [--budget-min 60] [--image-size 160] [--recipes-tried 1] [--work DIR]
    python bench/external.py --smoke --work DIR      # ~3-5 min end to end; writes DIR/external-smoke.json

``--max-cases N`` (``--smoke``: 100, with a 0.5-minute budget) keeps about N cases of each HAM split
and of the external set (stratified by diagnosis): a check that the benchmark runs, not a result.
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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _real_sample import shared_source
from dermkit.core.atomic import atomic_write_text
from dermkit.core.precision import cpu_capability
from dermkit.data.importers import run_import
from dermkit.data.predictions import Predictions, write_predictions
from dermkit.data.splits import stratified_sample
from dermkit.data.table import read_manifest, read_table, write_table
from dermkit.evaluate.ddx_compare import compare
from dermkit.evaluate.metrics.collection import score_predictions
from dermkit.metrics import choose_threshold, rates_at_threshold
from dermkit.models.ddx_net import LabelSpace
from dermkit.predict import predict_table
from ham_recipe import add_recipe_arguments, baseline_predictions, lesion_split_table, train_baseline, train_dermkit

RESULT = Path(__file__).resolve().parent / "results" / "external.json"
EXTERNAL = "isic-archive"
POSITIVE = "melanoma"
HEADLINE = ("balanced_accuracy", f"{POSITIVE}_auroc", f"{POSITIVE}_sensitivity", f"{POSITIVE}_specificity")
SMOKE_BUDGET_MIN, SMOKE_MAX_CASES = 0.5, 100


def progress(message: str) -> None:
    print(f"[external {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class FrozenArm:
    """A trained arm with every choice made on HAM validation; the external set only calls ``predict``."""

    name: str
    predict: Callable[[Path], Predictions]  # the test split of a table, in the arm's chosen views
    labels: LabelSpace
    threshold: float  # P(melanoma) >= threshold calls melanoma
    record: Mapping[str, Any]  # training, the choices, the internal HAM test figures


def melanoma_threshold(validation: Predictions, target: float) -> dict[str, Any]:
    """The most specific threshold with validation melanoma sensitivity >= ``target``, and its validation rates."""
    index = validation.classes.index(POSITIVE)
    scores, truth = validation.probs()[:, index], validation.labels() == index
    threshold = choose_threshold(scores, truth, rule="sensitivity", target=target)
    rates = rates_at_threshold(scores, truth, threshold)
    return {"threshold": threshold, "rule": f"highest threshold with validation sensitivity >= {target}",
            "validation_sensitivity": float(rates.sensitivity), "validation_specificity": float(rates.specificity),
            "validation_cases": len(validation)}


def headline(predictions: Predictions, threshold: float) -> dict[str, Any]:
    """The four headline figures with their 95 % bootstrap intervals, melanoma called at ``threshold``."""
    scored = score_predictions(predictions, metrics=HEADLINE, threshold=threshold, positive=POSITIVE, strata=())
    return {"cases_scored": scored["n"], "resampled_by": scored["resampled_by"], "n_boot": scored["n_boot"],
            **{name: scored["metrics"][name] for name in HEADLINE}}


def freeze(name: str, predict: Callable[[Path, str], Predictions], labels: LabelSpace, table: Path,
           target_sensitivity: float, work: Path, record: dict[str, Any], started: float) -> FrozenArm:
    """Choose the melanoma threshold on HAM validation, score the HAM test split, and freeze the arm
    (``started``: when the arm began, for its wall time)."""
    choosing = time.perf_counter()
    operating_point = melanoma_threshold(predict(table, "val"), target_sensitivity)
    internal = predict(table, "test")
    write_predictions(internal, work / f"{name}-ham-test-predictions.parquet")
    progress(f"{name}: melanoma threshold {operating_point['threshold']:.4f} chosen on HAM validation "
             f"(sensitivity {operating_point['validation_sensitivity']:.3f}); HAM test split scored")
    record = {**record, "melanoma_operating_point": operating_point,
              "internal_ham_test": headline(internal, operating_point["threshold"]),
              "threshold_and_internal_seconds": round(time.perf_counter() - choosing, 1),
              "wall_seconds": round(time.perf_counter() - started, 1)}
    return FrozenArm(name, partial(predict, split="test"), labels, operating_point["threshold"],
                     MappingProxyType(record))


def dermkit_arm(table: Path, work: Path, args: argparse.Namespace) -> FrozenArm:
    started = time.perf_counter()
    model, stats = train_dermkit(table, work, args.budget_min * 60, args.image_size, args.batch_size,
                                 args.head_epochs, args.finetune_lr, args.class_weights, args.augment,
                                 args.select_on, choose_views=True)
    views = stats["tta"]["views"]
    progress(f"dermkit: trained in {stats['train_seconds']:.0f} s, checkpoint of epoch {stats['best_epoch']}, "
             f"{views} test-time views chosen on HAM validation")

    def predict(data: Path, split: str) -> Predictions:
        return predict_table(model, data, [split], cache_dir=work / "cache", tta=views)

    return freeze("dermkit", predict, model.labels, table, args.target_sensitivity, work,
                  {**stats, "precision": {"training": stats["precision"], "scoring": "fp32"}}, started)


def baseline_arm(table: Path, work: Path, args: argparse.Namespace) -> FrozenArm:
    started = time.perf_counter()
    loop, stats = train_baseline(table, args.budget_min * 60, args.image_size, args.batch_size)
    progress(f"baseline: trained in {stats['train_seconds']:.0f} s ({stats['epochs_started']} epochs started), "
             "last weights, plain view")
    return freeze("baseline", partial(baseline_predictions, loop), loop.space, table, args.target_sensitivity, work,
                  {**stats, "precision": {"training": "fp32", "scoring": "fp32"}}, started)


def capped(table: Path, out: Path, max_cases: int) -> Path:
    """About ``max_cases`` cases of each split of ``table`` (stratified by diagnosis) as a table at ``out``."""
    frame = read_table(table)
    kept = [stratified_sample(frame[frame["split"] == split], max_cases) for split in frame["split"].unique()]
    manifest = {k: v for k, v in read_manifest(table).items() if k not in ("cases", "written_at")}
    return write_table(pd.concat(kept, ignore_index=True), out, manifest={**manifest, "max_cases_per_split": max_cases})


def score_external(arms: Sequence[FrozenArm], external: Path, work: Path) -> tuple[dict[str, Any], list[Predictions]]:
    """Each frozen arm's one scoring of the external table: its headline figures and label-space coverage."""
    differentials = list(read_table(external)["differential"])
    scores, tables = {}, []
    for arm in arms:
        started = time.perf_counter()
        progress(f"{arm.name}: scoring {EXTERNAL} ({len(differentials)} cases)")
        predictions = arm.predict(external)
        write_predictions(predictions, work / f"{arm.name}-{EXTERNAL}-predictions.parquet")
        outside = arm.labels.outside(differentials)
        scores[arm.name] = {"cases": len(differentials), "outside_label_space": outside,
                            **headline(predictions, arm.threshold),
                            "scoring_seconds": round(time.perf_counter() - started, 1)}
        tables.append(predictions)
    return scores, tables


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-min", type=float, help="wall-time budget of each arm (default 60; --smoke 0.5)")
    add_recipe_arguments(parser)
    parser.add_argument("--target-sensitivity", type=float, default=0.80,
                        help="melanoma threshold: the highest whose HAM validation sensitivity reaches this")
    parser.add_argument("--recipes-tried", type=int, default=1,
                        help="how many recipes were compared on HAM validation to pick the dermkit default (recorded)")
    parser.add_argument("--max-cases", type=int,
                        help="keep about N cases of each HAM split and of the external set (a smoke check)")
    parser.add_argument("--smoke", action="store_true",
                        help=f"--budget-min {SMOKE_BUDGET_MIN} --max-cases {SMOKE_MAX_CASES}, output in the work folder")
    parser.add_argument("--work", type=Path, help="work folder (tables, cache, predictions); default a temporary one")
    parser.add_argument("--out", type=Path,
                        help=f"result JSON (default {RESULT}; with --max-cases or --smoke WORK/external-smoke.json)")
    args = parser.parse_args()
    if args.smoke:
        args.budget_min = SMOKE_BUDGET_MIN if args.budget_min is None else args.budget_min
        args.max_cases = args.max_cases or SMOKE_MAX_CASES
    args.budget_min = 60.0 if args.budget_min is None else args.budget_min
    external_source = shared_source(EXTERNAL, "metadata.csv")  # exits with the reason before any training
    shared_source("ham10000", "metadata.csv")
    work = args.work or Path(tempfile.mkdtemp(prefix="external-"))
    work.mkdir(parents=True, exist_ok=True)
    out = args.out or (work / "external-smoke.json" if args.max_cases else RESULT)
    external = work / EXTERNAL
    for stale in (external, work / f"{EXTERNAL}-capped"):  # no external table exists while anything is chosen
        shutil.rmtree(stale, ignore_errors=True)
    started = time.perf_counter()

    progress(f"HAM10000: lesion-grouped split in {work / 'ham'}")
    table = lesion_split_table(work)
    if args.max_cases:
        table = capped(table, work / f"ham-max-{args.max_cases}", args.max_cases)
        progress(f"smoke: about {args.max_cases} cases of each HAM split in {table}")
    progress(f"dermkit arm: training ({args.budget_min:g} min budget, {args.image_size} px)")
    ours = dermkit_arm(table, work, args)
    progress(f"baseline arm: training ({args.budget_min:g} min budget, {args.image_size} px)")
    base = baseline_arm(table, work, args)

    # Every choice is frozen above; the external table is created only now and read only below.
    assert not external.exists(), f"{external} existed before both arms were frozen"
    progress(f"{EXTERNAL}: importing {external_source} as a test set as a whole")
    run_import(EXTERNAL, external_source, external, check_images=False, split="test")
    scored_table = capped(external, work / f"{EXTERNAL}-capped", args.max_cases) if args.max_cases else external
    scores, (ours_external, base_external) = score_external((ours, base), scored_table, work)

    arms = {arm.name: {**arm.record, "external": scores[arm.name]} for arm in (ours, base)}
    ratio = (scores["dermkit"]["balanced_accuracy"]["estimate"] / scores["baseline"]["balanced_accuracy"]["estimate"])
    result = {
        "benchmark": "external", "external_set": EXTERNAL, "budget_minutes": args.budget_min,
        "image_size": args.image_size, "max_cases_per_split": args.max_cases, "recipes_tried": args.recipes_tried,
        "dermkit_settings": {"head_epochs": args.head_epochs, "finetune_lr": args.finetune_lr,
                             "class_weights": args.class_weights, "augment": args.augment,
                             "select_on": args.select_on, "tta_chosen_on_validation": True,
                             "target_sensitivity": args.target_sensitivity},
        "ours": arms["dermkit"], "baseline": arms["baseline"],
        "ratio": ratio,  # dermkit / plain loop, external balanced accuracy
        "external_paired_difference": compare(ours_external, base_external),  # dermkit − baseline
        "wall_seconds": round(time.perf_counter() - started, 1),
        "machine": {"cpu_capability": cpu_capability(), "torch": torch.__version__,
                    "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(),
                    "platform": platform.platform(), "load_average": os.getloadavg()},
    }
    atomic_write_text(out, json.dumps(result, indent=2) + "\n")
    progress(f"ratio {ratio:.3f} (external balanced accuracy, dermkit / baseline); written {out}")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
