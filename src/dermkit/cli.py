"""The one command-line entry point. Thin: parse arguments, call the packages, print results.

Each area adds its sub-commands in its own ``_add_*`` function; heavy packages are imported
inside the command functions so ``dermkit --help`` stays instant.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dermkit import __version__
from dermkit.core.errors import DermkitError
from dermkit.core.precision import PRECISIONS
from dermkit.models.transforms import AUGMENTATIONS, TTA_VIEW_COUNTS

PRECISION_HELP = ("auto (default): bf16 only where this device runs it natively, else fp32; "
                  "bf16 on a CPU that emulates it warns (many times slower)")
TTA_HELP = ("test-time augmentation: the mean over N views of each image (2: + mirror; 4: + half turn; "
            "8: every quarter turn, mirrored or not)")


def print_json(document: Any) -> None:
    """``--json`` output: exactly one JSON document on stdout."""
    json.dump(document, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def _key_values(pairs: Sequence[str], flag: str) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise DermkitError(f"{flag} expects KEY=VALUE, got {pair!r}")
        out[key] = value
    return out


# -- data ---------------------------------------------------------------------------------------

def _cmd_data_import(args: argparse.Namespace) -> int:
    from dermkit.data.importers import run_import

    result = run_import(
        args.source,
        args.path,
        args.out,
        on_error=args.on_error,
        options=_key_values(args.option, "--option"),
        check_images=not args.no_image_check,
        split=args.split,
    )
    summary = {"out": str(result.out_dir), "cases": result.cases, "rejected": len(result.problems),
               **({"split": args.split} if args.split else {})}
    if args.json:
        print_json(summary)
    else:
        print(f"imported {result.cases} cases into {result.out_dir}"
              + (f", all in split {args.split}" if args.split else "")
              + (f" ({len(result.problems)} rejected, see import_report.json)" if result.problems else ""))
    return 0


def _cmd_data_split(args: argparse.Namespace) -> int:
    from dermkit.data.splits import format_split_counts, set_all_splits, split_table

    if args.all is not None:
        summary = set_all_splits(args.table, args.all)
    else:
        summary = split_table(args.table, by=args.by, val=args.val, test=args.test, seed=args.seed,
                              temporal=args.temporal, link_images=args.link_images)
    if args.json:
        print_json(summary)
    elif args.all is not None:
        print(f"put all {summary['cases']} cases of {args.table} in split {args.all}")
        print(format_split_counts(summary["counts"]))
    else:
        print(f"split {summary['cases']} cases by {args.by} in {args.table}")
        print(format_split_counts(summary["counts"]))
    return 0


def _cmd_data_check_leaks(args: argparse.Namespace) -> int:
    from dermkit.data.leaks import check_table, format_leaks

    report = check_table(args.table, hash_distance=None if args.no_images else args.hash_distance)
    if args.json:
        print_json(report.as_dict())
    else:
        print(format_leaks(report))
    return 0 if report.clean else 1


def _cmd_data_stats(args: argparse.Namespace) -> int:
    from dermkit.data.stats import format_stats, plot_stats, stats_for_table

    stats = stats_for_table(args.table)
    plots = plot_stats(stats, args.plots) if args.plots else []
    if args.json:
        print_json({**stats, "plots": [str(p) for p in plots]})
    else:
        print(format_stats(stats))
        if plots:
            print(f"wrote {len(plots)} charts to {args.plots}")
    return 0


def _cmd_data_shard(args: argparse.Namespace) -> int:
    from dermkit.data.shards import write_shards

    manifest = write_shards(args.table, args.out, samples_per_shard=args.samples_per_shard)
    if args.json:
        print_json(manifest)
    else:
        print(f"wrote {manifest['samples']} samples in {len(manifest['shards'])} shards to {args.out}"
              + (f" ({len(manifest['skipped'])} images skipped, see manifest.json)" if manifest["skipped"] else ""))
    return 0


class _ImporterNames:
    """The importers' names, imported only when ``data import`` checks or lists them: importing the
    importers (pandas) would cost every command, ``dermkit serve``'s time to answer included."""

    def __contains__(self, name: object) -> bool:
        return name in self._names()

    def __iter__(self) -> Any:
        return iter(self._names())

    @staticmethod
    def _names() -> list[str]:
        from dermkit.data.importers import IMPORTERS

        return sorted(IMPORTERS)


def _add_data(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="import, split, check and describe case tables")
    data_sub = data.add_subparsers(dest="data_command", required=True)

    imp = data_sub.add_parser("import", help="import a source dataset into a case table")
    imp.add_argument("source", choices=_ImporterNames(), metavar="SOURCE", help="source layout: %(choices)s")
    imp.add_argument("path", type=Path, help="the source's folder or file")
    imp.add_argument("--out", type=Path, required=True, help="output case-table directory")
    imp.add_argument("--on-error", choices=["raise", "skip"], default="raise",
                     help="stop at the first bad row (default) or skip and report bad rows")
    imp.add_argument("--option", "-o", action="append", default=[], metavar="KEY=VALUE",
                     help="importer option, e.g. images=DIR or, for csv, column mappings")
    imp.add_argument("--no-image-check", action="store_true", help="skip decoding every image")
    imp.add_argument("--split", choices=["train", "val", "test"],
                     help="put every case in this split (an external test set: --split test)")
    imp.add_argument("--json", action="store_true", help="print a JSON summary")
    imp.set_defaults(func=_cmd_data_import)

    # Literal choices and defaults (mirroring dermkit.data.splits/leaks) keep scipy out of --help.
    split = data_sub.add_parser("split", help="assign leak-free train/val/test splits in place")
    split.add_argument("table", type=Path, help="case-table directory")
    split.add_argument("--by", choices=["patient", "lesion", "case"], default="patient",
                       help="keep each patient (falling back to lesion, then case), lesion or case in one split")
    split.add_argument("--val", type=float, default=0.15, help="share of cases for validation (default 0.15)")
    split.add_argument("--test", type=float, default=0.15, help="share of cases for testing (default 0.15)")
    split.add_argument("--seed", type=int, default=0, help="random seed (same seed, same split)")
    split.add_argument("--temporal", action="store_true", help="earliest cases in train, latest in test")
    split.add_argument("--link-images", type=int, metavar="K",
                       help="also keep cases with images within K of 256 hash bits in one split (reads every image)")
    split.add_argument("--all", choices=["train", "val", "test"], metavar="SPLIT",
                       help="put every case in SPLIT instead (an external test set: --all test)")
    split.add_argument("--json", action="store_true", help="print the counts as JSON")
    split.set_defaults(func=_cmd_data_split)

    leaks = data_sub.add_parser("check-leaks", help="find patients, lesions and images shared across splits",
                                description="Exit status: 0 clean, 1 leaks found, 2 error.")
    leaks.add_argument("table", type=Path, help="case-table directory")
    leaks.add_argument("--hash-distance", type=int, default=20, metavar="K",
                       help="images within K of 256 perceptual-hash bits count as identical (default 20)")
    leaks.add_argument("--no-images", action="store_true", help="skip the image comparison")
    leaks.add_argument("--json", action="store_true", help="print the leaks as JSON")
    leaks.set_defaults(func=_cmd_data_check_leaks)

    stats = data_sub.add_parser("stats", help="counts per label, ontology level, skin type, site, age, ...")
    stats.add_argument("table", type=Path, help="case-table directory")
    stats.add_argument("--plots", type=Path, metavar="DIR", help="also write PNG bar charts to DIR")
    stats.add_argument("--json", action="store_true", help="print the statistics as JSON")
    stats.set_defaults(func=_cmd_data_stats)

    shard = data_sub.add_parser("shard", help="write WebDataset-style tar shards (image, caption, case JSON)")
    shard.add_argument("table", type=Path, help="case-table directory")
    shard.add_argument("--out", type=Path, required=True, help="shard directory (tars + index.parquet)")
    shard.add_argument("--samples-per-shard", type=int, default=1000, help="image-text pairs per tar (default 1000)")
    shard.add_argument("--json", action="store_true", help="print the manifest as JSON")
    shard.set_defaults(func=_cmd_data_shard)


# -- train --------------------------------------------------------------------------------------

def _cmd_train_clip(args: argparse.Namespace) -> int:
    from dermkit.train import ClipTrainConfig, train_clip

    summary = train_clip(ClipTrainConfig(
        model=args.model, data=[str(d) for d in args.data], out=str(args.out), epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, wd=args.wd, warmup=args.warmup, accum=args.accum,
        precision=args.precision, lock_image=args.lock_image, lock_text=args.lock_text,
        unlock_image_groups=args.unlock_image_groups, unlock_text_layers=args.unlock_text_layers, loss=args.loss,
        seed=args.seed, grad_checkpointing=args.grad_checkpointing, resume=args.resume, workers=args.workers,
        save_every=args.save_every, max_steps=args.max_steps,
        cache_dir=None if args.cache_dir is None else str(args.cache_dir),
        tensorboard=args.tensorboard, export=not args.no_export,
    ))
    if summary is None:  # not the main process of a torchrun launch: rank 0 reports
        return 0
    if args.json:
        print_json(summary)
    else:
        state = "finished" if summary["finished"] else "stopped"
        print(f"{state} at epoch {summary['epoch']}, step {summary['step']}: {summary['out']}")
    return 0


def _add_train(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser("train", help="train models (multi-process: torchrun -m dermkit.cli train ...)")
    train_sub = train.add_subparsers(dest="train_command", required=True)

    clip = train_sub.add_parser("clip", help="contrastive (CLIP or SigLIP) training on case tables")
    clip.add_argument("--model", default="dermlip-lite", help="model name for dermkit.models.load_model")
    clip.add_argument("--data", type=Path, action="append", required=True, metavar="TABLE_DIR",
                      help="case table (repeatable); trains on split 'train', validates on 'val'")
    clip.add_argument("--out", type=Path, required=True, help="run directory (checkpoints, metrics, export)")
    clip.add_argument("--epochs", type=int, default=30)
    clip.add_argument("--batch-size", type=int, default=2048, help="global batch over all processes")
    clip.add_argument("--lr", type=float, default=1e-4)
    clip.add_argument("--wd", type=float, default=0.1, help="AdamW weight decay (matrices only)")
    clip.add_argument("--warmup", type=int, default=1000, help="linear warm-up steps before cosine decay")
    clip.add_argument("--accum", type=int, default=1, help="batches per optimiser step")
    clip.add_argument("--precision", choices=PRECISIONS, default="auto", help=PRECISION_HELP)
    clip.add_argument("--lock-image", action="store_true", help="freeze the image trunk (features cached)")
    clip.add_argument("--lock-text", action="store_true", help="freeze the text trunk (features cached)")
    clip.add_argument("--unlock-image-groups", type=int, default=0, metavar="N",
                      help="with --lock-image: train the last N layer groups (open_clip's numbering)")
    clip.add_argument("--unlock-text-layers", type=int, default=0, metavar="N",
                      help="with --lock-text: train the last N layers (open_clip's numbering)")
    clip.add_argument("--loss", choices=["clip", "siglip"], default="clip")
    clip.add_argument("--seed", type=int, default=0)
    clip.add_argument("--grad-checkpointing", action="store_true", help="trade compute for activation memory")
    clip.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/last.pt if present")
    clip.add_argument("--workers", type=int, default=0, help="data-loading processes per training process")
    clip.add_argument("--save-every", type=int, default=0, metavar="STEPS",
                      help="also checkpoint every STEPS optimiser steps (default: each epoch's end)")
    clip.add_argument("--max-steps", type=int, help="stop with a checkpoint after this many steps in total")
    clip.add_argument("--cache-dir", type=Path, help="feature cache of frozen trunks (default $DERMKIT_CACHE_DIR/features)")
    clip.add_argument("--tensorboard", action="store_true", help="also log to OUT/tensorboard")
    clip.add_argument("--no-export", action="store_true", help="skip exporting the final model to OUT/model")
    clip.add_argument("--json", action="store_true", help="print the run summary as JSON")
    clip.set_defaults(func=_cmd_train_clip)
    _add_train_ddx_gan(train_sub)


# -- differential diagnosis, GAN synthesis, prediction ---------------------------------------------

def _cmd_train_ddx(args: argparse.Namespace) -> int:
    from dermkit.train.ddx import DdxTrainConfig, train_ddx

    labels = args.labels if "," not in args.labels else [x.strip() for x in args.labels.split(",")]
    summary = train_ddx(DdxTrainConfig(
        data=[str(d) for d in args.data], out=str(args.out), labels=labels, other=not args.no_other,
        aux_level=args.aux_level, inputs=args.inputs, backbone=args.backbone, pretrained=not args.no_pretrained,
        image_size=args.image_size,
        pooling=args.pooling, loss=args.loss, class_weights=args.class_weights, beta=args.beta,
        focal_gamma=args.focal_gamma, focal_alpha=args.focal_alpha, label_smoothing=args.label_smoothing,
        sampling=args.sampling, field_dropout=args.field_dropout, synthetic=[str(s) for s in args.synthetic],
        synthetic_ratio=args.synthetic_ratio, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, wd=args.wd,
        hidden=args.hidden, dropout=args.dropout,
        unfreeze_epoch=args.unfreeze_epoch, unfreeze_groups=args.unfreeze_groups, finetune_lr=args.finetune_lr,
        schedule=args.schedule, augment=args.augment, decision=args.decision,
        time_budget_s=None if args.time_budget_min is None else args.time_budget_min * 60,
        patience=args.patience, select_on=args.select_on, precision=args.precision, seed=args.seed,
        resume=args.resume, workers=args.workers,
        cache_dir=None if args.cache_dir is None else str(args.cache_dir), tta=args.tta,
        shades_of_gray=args.shades_of_gray, weight_average=args.weight_average, ema_decay=args.ema_decay,
    ))
    if summary is None:  # not the main process of a torchrun launch: rank 0 reports
        return 0
    if args.json:
        print_json(summary)
    else:
        print(f"best epoch {summary['best_epoch']} (chosen on validation): {summary.get('model')}")
    return 0


def _cmd_train_gan(args: argparse.Namespace) -> int:
    from dermkit.train.gan import GanTrainConfig, train_gan

    summary = train_gan(GanTrainConfig(
        data=str(args.data), out=str(args.out), class_a=args.source, class_b=args.target,
        image_size=args.image_size, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        cycle_weight=args.cycle_weight, seed=args.seed, sample_every=args.sample_every, max_steps=args.max_steps,
        resume=args.resume))
    if summary is None:
        return 0
    if args.json:
        print_json(summary)
    else:
        print(f"trained {summary['step']} steps: {summary['out']}/model")
    return 0


def _cmd_synthesize(args: argparse.Namespace) -> int:
    from dermkit.train.gan import synthesize

    result = synthesize(args.gan, args.data, args.out, limit=args.limit, seed=args.seed)
    if args.json:
        print_json(result)
    else:
        print(f"wrote {result['cases']} synthetic {result['class']} cases to {result['table']}")
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from dermkit.predict import parse_fields, predict_case

    fields = parse_fields(age=args.age, sex=args.sex, fitzpatrick=args.fitzpatrick, site=args.site,
                          symptoms=args.symptom, history=_key_values(args.history, "--history"),
                          measurements=_key_values(args.measurement, "--measurement"))
    result = predict_case(args.model, args.images, fields, top=args.top, tta=args.tta)
    if args.json:
        print_json(result)
        return 0
    for entry in result["differential"]:
        print(f"{entry['rank']:>2}. {entry['probability']:6.1%}  {entry['name']} ({entry['id']})")
    for note in result["ignored"]:
        print(f"note: this model does not use {note}", file=sys.stderr)
    print(result["note"], file=sys.stderr)
    return 0


def _add_train_ddx_gan(train_sub: argparse._SubParsersAction) -> None:
    ddx = train_sub.add_parser("ddx", help="differential diagnosis / lesion classifier from images + history")
    ddx.add_argument("--data", type=Path, action="append", required=True, metavar="TABLE_DIR",
                     help="case table (repeatable); trains on 'train', chooses the checkpoint on 'val'")
    ddx.add_argument("--out", type=Path, required=True, help="run directory (checkpoints, metrics, model)")
    ddx.add_argument("--labels", default="ddx26", help="label-set name (ddx26, ham10000, ...) or comma list")
    ddx.add_argument("--no-other", action="store_true", help="no 'other' class: drop cases outside the labels")
    ddx.add_argument("--aux-level", type=int, help="auxiliary head at this ontology level")
    ddx.add_argument("--inputs", choices=["images", "metadata", "images+metadata"], default="images+metadata")
    ddx.add_argument("--backbone", default="timm:efficientnet_lite0",
                     help="timm:ARCH, clip:MODEL, or ddx:DIR (the trunk of a trained ddx model)")
    ddx.add_argument("--no-pretrained", action="store_true", help="random backbone weights (tests, ablations)")
    ddx.add_argument("--image-size", type=int, help="input side (default: the backbone's)")
    ddx.add_argument("--pooling", choices=["mean", "attention"], default="mean")
    ddx.add_argument("--loss", choices=["soft-ce", "focal"], default="soft-ce")
    ddx.add_argument("--class-weights", choices=["none", "inverse", "effective"], default="effective")
    ddx.add_argument("--beta", type=float, default=0.999, help="effective-number beta")
    ddx.add_argument("--focal-gamma", type=float, default=2.0)
    ddx.add_argument("--focal-alpha", type=float, help="binary focal alpha (positive class), e.g. 0.25")
    ddx.add_argument("--label-smoothing", type=float, default=0.1)
    ddx.add_argument("--sampling", choices=["natural", "balanced"], default="natural")
    ddx.add_argument("--field-dropout", type=float, default=0.2, help="chance to hide each metadata field")
    ddx.add_argument("--synthetic", type=Path, action="append", default=[], metavar="TABLE_DIR",
                     help="synthetic case table to mix into training (repeatable)")
    ddx.add_argument("--synthetic-ratio", type=float, default=1.0, help="synthetic per real case of a class")
    ddx.add_argument("--epochs", type=int, default=60)
    ddx.add_argument("--batch-size", type=int, default=32, help="global batch over all processes")
    ddx.add_argument("--lr", type=float, default=1e-3)
    ddx.add_argument("--wd", type=float, default=1e-4, help="AdamW weight decay")
    ddx.add_argument("--hidden", type=int, default=256, help="width of the joint layer")
    ddx.add_argument("--dropout", type=float, default=0.3)
    ddx.add_argument("--unfreeze-epoch", type=int, help="open the last trunk groups from this epoch")
    ddx.add_argument("--unfreeze-groups", type=int, default=2,
                     help="trunk groups to open, counted from the output (-1: all)")
    ddx.add_argument("--finetune-lr", type=float, default=1e-4, help="base rate of the opened trunk groups")
    ddx.add_argument("--schedule", choices=["constant", "cosine"], default="constant",
                     help="fine-tuning rates: constant, or one warm-up epoch then cosine decay to zero")
    ddx.add_argument("--augment", choices=AUGMENTATIONS, default="light",
                     help="fine-tuning augmentation: light (crops, flips, quarter turns, mild brightness/contrast; "
                          "colour kept) or strong (DermLIP's colour jitter and grayscale, 45-degree rotation)")
    ddx.add_argument("--shades-of-gray", type=float, metavar="P",
                     help="Shades of Gray colour constancy of norm P (6 in the ISIC literature), at training and, "
                          "stored with the model, at eval/predict/serve time")
    ddx.add_argument("--weight-average", choices=["none", "ema"], default="none",
                     help="ema: a moving average of the fine-tuned weights, validated beside the plain ones each "
                          "epoch; the better on --select-on is kept")
    ddx.add_argument("--ema-decay", type=float, default=0.998, help="per-step decay of --weight-average ema")
    ddx.add_argument("--decision", choices=["argmax", "balanced"], default="argmax",
                     help="balanced: correct the logits for the training class mix (tau chosen on validation), "
                          "for balanced accuracy on imbalanced data")
    ddx.add_argument("--time-budget-min", type=float,
                     help="wall-time budget (caching included): the fine-tuning epochs are fitted to it")
    ddx.add_argument("--patience", type=int, default=10, help="epochs without validation gain before stopping")
    ddx.add_argument("--select-on", choices=["loss", "balanced-accuracy"], default="loss",
                     help="validation criterion of the checkpoint kept and of early stopping: the class-balanced "
                          "loss (steady on small splits) or balanced accuracy (some hundreds of cases or more)")
    ddx.add_argument("--precision", choices=PRECISIONS, default="auto", help=PRECISION_HELP)
    ddx.add_argument("--seed", type=int, default=0)
    ddx.add_argument("--resume", action="store_true")
    ddx.add_argument("--workers", type=int, default=0)
    ddx.add_argument("--cache-dir", type=Path, help="frozen-trunk feature cache (default $DERMKIT_CACHE_DIR/features)")
    ddx.add_argument("--tta", choices=["auto", *map(str, TTA_VIEW_COUNTS)], default="1",
                     help="test-time views stored with the model (predict, eval and serve use them); "
                          "auto: the count of best validation balanced accuracy")
    ddx.add_argument("--json", action="store_true")
    ddx.set_defaults(func=_cmd_train_ddx)

    gan = train_sub.add_parser("gan", help="CycleGAN between two classes of a case table (training split)")
    gan.add_argument("--data", type=Path, required=True, metavar="TABLE_DIR")
    gan.add_argument("--out", type=Path, required=True)
    gan.add_argument("--source", default="melanocytic_nevus", help="class A (translated from)")
    gan.add_argument("--target", default="melanoma", help="class B (translated to)")
    gan.add_argument("--image-size", type=int, default=64)
    gan.add_argument("--epochs", type=int, default=10)
    gan.add_argument("--batch-size", type=int, default=4)
    gan.add_argument("--lr", type=float, default=2e-4)
    gan.add_argument("--cycle-weight", type=float, default=10.0)
    gan.add_argument("--seed", type=int, default=0)
    gan.add_argument("--sample-every", type=int, default=100, help="steps between PNG sample grids")
    gan.add_argument("--max-steps", type=int)
    gan.add_argument("--resume", action="store_true")
    gan.add_argument("--json", action="store_true")
    gan.set_defaults(func=_cmd_train_gan)


def _add_synthesize_predict(sub: argparse._SubParsersAction) -> None:
    synth = sub.add_parser("synthesize", help="translate training cases with a CycleGAN into a synthetic table")
    synth.add_argument("gan", type=Path, help="the GAN model directory (RUN/model)")
    synth.add_argument("--data", type=Path, required=True, help="case table whose training cases are translated")
    synth.add_argument("--out", type=Path, required=True, help="new case table (images beside it, OUT-images)")
    synth.add_argument("--limit", type=int, help="at most this many cases (a fixed random subset)")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--json", action="store_true")
    synth.set_defaults(func=_cmd_synthesize)

    predict = sub.add_parser("predict", help="ranked differential of one case (research use only)")
    predict.add_argument("model", help="a model directory written by 'dermkit train ddx' (RUN/model)")
    predict.add_argument("images", nargs="+", metavar="IMAGE", help="1-6 images of the case")
    predict.add_argument("--age", type=float)
    predict.add_argument("--sex", help="female | male | other")
    predict.add_argument("--site", help="body site (ontology name or synonym)")
    predict.add_argument("--fitzpatrick", help="skin type I-VI or 1-6")
    predict.add_argument("--symptom", action="append", default=[], help="reported symptom (repeatable)")
    predict.add_argument("--history", action="append", default=[], metavar="KEY=yes|no",
                         help="history answer, e.g. smoke=no (repeatable)")
    predict.add_argument("--measurement", action="append", default=[], metavar="NAME=VALUE",
                         help="numeric finding the model was trained on, e.g. diameter_1_mm=6 (repeatable)")
    predict.add_argument("--top", type=int, help="show only the top N conditions")
    predict.add_argument("--tta", type=int, choices=TTA_VIEW_COUNTS, metavar="N",
                         help=TTA_HELP + "; default: the count stored with the model")
    predict.add_argument("--json", action="store_true")
    predict.set_defaults(func=_cmd_predict)


# -- ontology -----------------------------------------------------------------------------------

def _cmd_ontology_show(args: argparse.Namespace) -> int:
    from dermkit.ontology import UnknownTermError, default_ontology, load_ontology

    try:
        ontology = load_ontology(args.ontology) if args.ontology else default_ontology()
        hierarchy, node = ontology.lookup(args.name)
    except UnknownTermError as error:
        raise DermkitError(str(error)) from error
    except (OSError, ValueError) as error:
        raise DermkitError(f"cannot read ontology {args.ontology}: {error}") from error
    record = hierarchy.describe(node.id)
    if args.json:
        print_json(record)
        return 0
    print(f"{record['name']} [{record['id']}]: {record['kind']}, level {record['level']}")
    print("path: " + " > ".join(step["name"] for step in record["path"]))
    if record["synonyms"]:
        print("synonyms: " + ", ".join(record["synonyms"]))
    for child in record["children"]:
        print(f"  - {child['name']} [{child['id']}]")
    return 0


def _cmd_ontology_tag(args: argparse.Namespace) -> int:
    from dermkit.ontology import tag_text

    tags = tag_text(args.text).as_dict()
    if args.json:
        print_json(tags)
        return 0
    for field, values in tags.items():
        if field == "negated":
            values = [f"{vocabulary}:{node_id}" for vocabulary, ids in values.items() for node_id in ids]
        if values:
            print(f"{field}: {', '.join(str(v) for v in values)}")
    return 0


def _cmd_ontology_coverage(args: argparse.Namespace) -> int:
    from dermkit.data.coverage import format_coverage, label_coverage

    coverage = label_coverage(args.path, source=args.source)
    if args.json:
        print_json(coverage.as_dict())
    else:
        print("\n".join(format_coverage(coverage)))
    return 0


def _add_ontology(sub: argparse._SubParsersAction) -> None:
    ontology = sub.add_parser("ontology", help="look up ontology terms and tag free text")
    ontology_sub = ontology.add_subparsers(dest="ontology_command", required=True)

    show = ontology_sub.add_parser("show", help="show a condition, concept, body site or symptom")
    show.add_argument("name", help="an id, name or synonym (case and punctuation ignored)")
    show.add_argument("--ontology", type=Path, metavar="FILE",
                      help="a Derm1M ontology.json to use instead of the shipped conditions")
    show.add_argument("--json", action="store_true", help="print the node as JSON")
    show.set_defaults(func=_cmd_ontology_show)

    tag = ontology_sub.add_parser("tag", help="tag conditions, concepts, sites, symptoms and skin types in text")
    tag.add_argument("text", help="free text, e.g. a caption")
    tag.add_argument("--json", action="store_true", help="print the tags as JSON")
    tag.set_defaults(func=_cmd_ontology_tag)

    coverage = ontology_sub.add_parser("coverage", help="how many of a source's condition names the ontology maps")
    coverage.add_argument("path", type=Path,
                          help="a file of condition names (one a line), or a dermatology-rankings release "
                               "(folder or dermatology_selectors.json: also the readers' label mass)")
    coverage.add_argument("--source", help="map with this source's code table in mappings.yaml "
                                           "(default: dermatology-rankings for a release, else names only)")
    coverage.add_argument("--json", action="store_true", help="print the coverage as JSON")
    coverage.set_defaults(func=_cmd_ontology_coverage)


# -- models -------------------------------------------------------------------------------------

def _cmd_models_list(args: argparse.Namespace) -> int:
    from dermkit.models import list_models

    names = list_models()
    if args.json:
        print_json(names)
    else:
        print("\n".join(names))
        print("also: open_clip:ARCH[:TAG], hf-hub:ORG/REPO, local-dir:PATH or a directory path")
    return 0


def _cmd_models_export(args: argparse.Namespace) -> int:
    import dataclasses

    from dermkit.models import ModelCard, export_model, load_model

    loaded = load_model(args.name)
    card = loaded.card or ModelCard(model_id=args.out.name, base_model=args.name)
    if args.model_id:
        card = dataclasses.replace(card, model_id=args.model_id)
    out = export_model(loaded, args.out, card, overwrite=args.overwrite)
    if args.json:
        print_json({"out": str(out), "model_id": card.model_id})
    else:
        print(f"exported {args.name} to {out}")
    return 0


def _add_models(sub: argparse._SubParsersAction) -> None:
    models = sub.add_parser("models", help="list model families and export models in open_clip's layout")
    models_sub = models.add_subparsers(dest="models_command", required=True)

    listing = models_sub.add_parser("list", help="list the registered model families")
    listing.add_argument("--json", action="store_true", help="print the names as a JSON list")
    listing.set_defaults(func=_cmd_models_list)

    export = models_sub.add_parser("export", help="export a model (any accepted name) with a model card")
    export.add_argument("name", help="model name, e.g. dermlip-lite, hf-hub:ORG/REPO or a directory")
    export.add_argument("--out", type=Path, required=True, help="export directory (open_clip layout)")
    export.add_argument("--model-id", help="id written in the model card (default: the card's or OUT's name)")
    export.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    export.add_argument("--json", action="store_true", help="print a JSON summary")
    export.set_defaults(func=_cmd_models_export)


# -- demo ---------------------------------------------------------------------------------------

def _cmd_demo(args: argparse.Namespace) -> int:
    from dermkit.data.stats import format_stats
    from dermkit.demo import DEMO_HAM_CASES, default_data_root, run_demo

    data_root = args.data_root if args.data_root is not None else default_data_root()
    summary = run_demo(data_root, args.out, seed=args.seed, model=args.model, train=not args.no_train,
                       ham_cases=DEMO_HAM_CASES if args.ham_cases is None else args.ham_cases)
    if args.json:
        print_json(summary)
        return 0
    print(f"dermkit demo on the {summary['data']} -> {args.out}")
    for name, table in summary["tables"].items():
        print(f"\n== {name}: {table['cases']} cases in {table['table']}")
        print(format_stats(table["stats"]))
        print(f"leaks across splits: {table['leaks']}")
        if "sample" in table:
            print(f"trained and evaluated on a class-stratified sample: {table['sample']['cases']} cases "
                  f"({table['sample']['table']})")
        print(f"plots: {Path(table['plots'][0]).parent}")
    if "held_out" in summary:
        print(f"\n== {summary['served_model']}: held-out cases of {summary['held_out']['table']}")
        for label in ("untrained", "trained"):
            report = summary["held_out"][label]
            shot, recall = report["zero_shot"], report["retrieval"]["image_to_text"]
            figures = {name: shot["metrics"][name]["estimate"] for name in ("balanced_accuracy", "top1_accuracy")}
            print(f"{label:>9}: text-prompt balanced accuracy {figures['balanced_accuracy']:.3f} "
                  f"(top-1 {figures['top1_accuracy']:.3f}, n {shot['n']}), image->text R@10 {recall['R@10']:.3f}")
    if "ddx" in summary:
        ddx = summary["ddx"]
        figures = {name: ddx["metrics"][name] for name in ("balanced_accuracy", "top3_accuracy")}
        print(f"\n== image + history differential ({ddx['model']}): test balanced accuracy "
              f"{figures['balanced_accuracy']['estimate']:.3f} [{figures['balanced_accuracy']['low']:.3f}, "
              f"{figures['balanced_accuracy']['high']:.3f}], top-3 {figures['top3_accuracy']['estimate']:.3f} "
              f"(n {ddx['n_test']}); card {ddx['card']}")
    if "report" in summary:
        print(f"\nreport: {summary['report']['html']} (Markdown: {summary['report']['markdown']})")
    if args.serve:
        from dermkit.serve import ServeConfig
        from dermkit.serve.build import build_index
        from dermkit.serve.server import serve

        index = args.out / "index"
        build_index(summary["served_model"], [t["table"] for t in summary["tables"].values()], index)
        serve(ServeConfig(model=summary["served_model"], index=index, port=args.port,
                          ddx_model=summary.get("served_ddx_model")))
    return 0


def _add_demo(sub: argparse._SubParsersAction) -> None:
    demo = sub.add_parser("demo", help="run the main job end to end on the real sample (or synthetic data)")
    demo.add_argument("--data-root", type=Path,  # default resolved when run: importing the demo is slow
                      help="folder holding pad-ufes-20/ and ham10000/ (default: $DERMKIT_DATA or ../shared/data)")
    demo.add_argument("--out", type=Path, default=Path("runs/demo"), help="where everything is written")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--json", action="store_true", help="print the summary as JSON")
    demo.add_argument("--serve", action="store_true",
                      help="end by serving the model, the trained differential-diagnosis model and a "
                           "similar-case index of the demo tables")
    demo.add_argument("--model", default="dermlip-lite",
                      help="vision-language model the demo fine-tunes, evaluates and (with --serve) serves")
    demo.add_argument("--no-train", action="store_true",
                      help="skip fine-tuning, the differential-diagnosis model and held-out evaluation")
    demo.add_argument("--ham-cases", type=int,  # default from dermkit.demo, imported only when run
                      help="train and evaluate on a class-stratified sample of this many HAM10000 cases "
                           "(default: dermkit.demo.DEMO_HAM_CASES, 800; the whole set is still imported, checked "
                           "and described)")
    demo.add_argument("--port", type=int, default=8000, help="port for --serve (bound to 127.0.0.1)")
    demo.set_defaults(func=_cmd_demo)


# -- eval (model-running tasks) -------------------------------------------------------------------

def _cmd_eval_features(args: argparse.Namespace) -> int:
    from dermkit.evaluate.features import extract_image_features

    features = extract_image_features(
        args.model, args.table, images=args.images, cache_dir=args.cache_dir, batch_size=args.batch_size,
        num_workers=args.workers, precision=args.precision,
    )
    print_json({key: features.meta[key] for key in ("model", "n_images", "embed_dim", "precision_used")})
    return 0


def _scoring(args: argparse.Namespace) -> dict[str, Any]:
    """The metric collection's bootstrap and strata settings from an ``eval`` command's flags."""
    return {"n_boot": args.n_boot, "min_stratum": args.min_stratum}


def _cmd_eval_zeroshot(args: argparse.Namespace) -> int:
    from dermkit.evaluate.metrics.collection import score_predictions
    from dermkit.evaluate.predictions import write_predictions
    from dermkit.evaluate.zeroshot import zero_shot_predictions

    predictions = zero_shot_predictions(
        args.model, args.table, classes=args.label_set, split=args.split, images=args.images, cache_dir=args.cache_dir
    )
    if args.out is not None:
        write_predictions(predictions, args.out)
    print_json({"model": predictions.model_id, "split": args.split, **score_predictions(predictions, **_scoring(args))})
    return 0


def _cmd_eval_concepts(args: argparse.Namespace) -> int:
    from dermkit.evaluate.concepts import concept_report

    print_json(concept_report(args.model, args.table, args.annotations, split=args.split, id_column=args.id_column,
                              images=args.images, cache_dir=args.cache_dir, **_scoring(args)))
    return 0


def _cmd_eval_probe(args: argparse.Namespace) -> int:
    from dermkit.evaluate.linear_probe import DEFAULT_REGIMES, linear_probe_report

    print_json(linear_probe_report(args.model, args.table, classes=args.label_set,
                                   regimes=args.regime or DEFAULT_REGIMES, seeds=args.seeds,
                                   images=args.images, cache_dir=args.cache_dir, out=args.out, **_scoring(args)))
    return 0


def _cmd_eval_retrieval(args: argparse.Namespace) -> int:
    from dermkit.evaluate.retrieval import retrieval_report

    print_json(retrieval_report(args.model, args.table, args.split, args.captions_per_case, seed=args.seed,
                                images=args.images, cache_dir=args.cache_dir, **_scoring(args)))
    return 0


def _cmd_eval_classifier(args: argparse.Namespace) -> int:
    from dermkit.evaluate.isic import to_isic_csv, without_zero_weight
    from dermkit.evaluate.metrics.collection import score_predictions
    from dermkit.evaluate.predictions import write_predictions
    from dermkit.models.families.ddx import load_ddx, store_tta
    from dermkit.predict import choose_tta, describe_coverage, label_space_coverage, predict_table

    model, splits = load_ddx(args.model), args.split or ["test"]
    coverage = label_space_coverage(model, args.table, splits)  # fails first, naming the splits present
    tta = None if args.tta in (None, "auto") else int(args.tta)
    if args.tta == "auto":  # chosen on validation, stored with the model for predict and serve
        model.config["tta"] = {**choose_tta(model, args.table, cache_dir=args.cache_dir), "chosen": "validation"}
        store_tta(args.model, model.config["tta"])
        print(f"test-time views chosen on validation: {model.tta} (stored in {args.model})", file=sys.stderr)
    predictions = predict_table(model, args.table, splits, cache_dir=args.cache_dir, tta=tta)
    if args.out is not None:
        write_predictions(predictions, args.out)
    extra: dict[str, Any] = {}
    if args.isic_csv is not None:
        extra["isic_csv"] = {"path": str(args.isic_csv), "edition": to_isic_csv(predictions, args.isic_csv)}
    scored, zero_weight = without_zero_weight(predictions)
    if zero_weight is not None:
        extra["isic_zero_weight"] = zero_weight
        print(f"note: {zero_weight['why']}", file=sys.stderr)
    print(describe_coverage(coverage), file=sys.stderr)
    result = {"split": splits, "tta": model.tta if tta is None else tta,
              **score_predictions(scored, positive=args.positive, **_scoring(args)),
              "label_space": {"classes": list(model.classes), **coverage}, **extra}
    if args.card:
        from dermkit.evaluate.card import table_data, write_evaluation_card

        result["card"] = str(write_evaluation_card(args.model, result, data=table_data(args.table, splits)))
    print_json(result)
    return 0


def _cmd_eval_compare(args: argparse.Namespace) -> int:
    from dermkit.evaluate.ddx_compare import compare, complete_history_mask
    from dermkit.evaluate.predictions import read_predictions

    a, b = read_predictions(args.a), read_predictions(args.b)
    mask = None if args.complete_history is None else complete_history_mask(a, args.complete_history)
    print_json(compare(a, b, mask=mask, n_boot=args.n_boot))
    return 0


def _cmd_eval_suite(args: argparse.Namespace) -> int:
    from dermkit.evaluate.runner import run_suite
    from dermkit.evaluate.suite import load_suite

    suite = load_suite(args.suite)  # fails here, naming the line, before any model runs
    if args.check:
        print(f"{args.suite}: {len(suite.datasets)} datasets, {len(suite.models)} models, {len(suite.tasks)} tasks: ok")
        return 0
    if args.out is None:
        raise DermkitError("--out RUN is required to run a suite")
    document = run_suite(suite, args.out, progress=not args.quiet, split=args.split)
    print(f"{len(document['results'])} results in {document['wall_s']} s: {Path(args.out) / 'results.json'}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from dermkit.evaluate.report import write_report

    html, markdown = write_report(args.run, args.out, args.markdown)
    print(f"wrote {html} and {markdown}")
    return 0


class _SuiteNames(dict):
    """Sub-command names of ``eval`` that also accept a suite file (``*.yaml`` / ``*.yml``)."""

    def __contains__(self, name: object) -> bool:
        return super().__contains__(name) or str(name).endswith((".yaml", ".yml"))


class _TaskOrSuite(argparse._SubParsersAction):
    """``dermkit eval SUITE.yaml`` runs a suite; ``dermkit eval TASK ...`` runs one task."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._name_parser_map = self.choices = _SuiteNames()

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        if values and str(values[0]).endswith((".yaml", ".yml")):
            values = ["suite", *values]
        super().__call__(parser, namespace, values, option_string)


def _add_scoring(parser: argparse.ArgumentParser, n_boot: int = 1000) -> None:
    """The metric collection's flags, shared by every ``eval`` task (docs/metrics.md)."""
    parser.add_argument("--n-boot", type=int, default=n_boot,
                        help=f"bootstrap resamples of patients, else lesions, else cases (default {n_boot})")
    parser.add_argument("--min-stratum", type=int, default=10,
                        help="smallest group that enters the between-group gap (default 10; smaller ones are listed)")


def _add_eval(sub: argparse._SubParsersAction) -> None:
    evaluate = sub.add_parser(
        "eval", help="run an evaluation suite (eval SUITE.yaml --out RUN) or one task on a case table",
        description="dermkit eval SUITE.yaml --out RUN runs a suite (docs/evaluation-suites.md); "
                    "dermkit eval TASK MODEL TABLE runs one task.")
    eval_sub = evaluate.add_subparsers(dest="eval_command", required=True, action=_TaskOrSuite)

    suite = eval_sub.add_parser("suite", help="run a suite file (also: dermkit eval SUITE.yaml ...)")
    suite.add_argument("suite", type=Path, help="suite YAML file")
    suite.add_argument("--out", type=Path, help="run directory (predictions, results.json)")
    suite.add_argument("--check", action="store_true", help="only validate the suite")
    suite.add_argument("--quiet", action="store_true", help="no progress bars")
    suite.add_argument("--split", choices=["all"],
                       help="all: score every case of every dataset, whatever its split (external test sets)")
    suite.set_defaults(func=_cmd_eval_suite)

    report = sub.add_parser("report", help="HTML + Markdown report of a suite run (never re-runs a model)")
    report.add_argument("run", type=Path, help="run directory written by dermkit eval SUITE.yaml")
    report.add_argument("--out", type=Path, required=True, help="HTML file to write")
    report.add_argument("--markdown", type=Path, help="Markdown file (default: OUT with .md)")
    report.set_defaults(func=_cmd_report)

    def task(name: str, help_text: str, func: Any, scored: bool = True) -> argparse.ArgumentParser:
        parser = eval_sub.add_parser(name, help=help_text)
        parser.add_argument("model", help="model name for dermkit.models.load_model")
        parser.add_argument("table", type=Path, help="case-table directory")
        parser.add_argument("--images", choices=["first", "all"], default="first",
                            help="embed each case's first image, or all of them (averaged)")
        parser.add_argument("--cache-dir", type=Path, help="feature cache (default $DERMKIT_CACHE_DIR/features)")
        if scored:
            _add_scoring(parser)
        parser.set_defaults(func=func)
        return parser

    features = task("features", "extract and cache image embeddings of every case", _cmd_eval_features,
                    scored=False)
    features.add_argument("--batch-size", type=int, default=64)
    features.add_argument("--workers", type=int, help="decoding processes (default: cores - 1)")
    features.add_argument("--precision", choices=PRECISIONS, default="auto", help=PRECISION_HELP)

    zeroshot = task("zeroshot", "zero-shot classification into a label set", _cmd_eval_zeroshot)
    zeroshot.add_argument("--split", default="test", help="split to classify (default test)")
    zeroshot.add_argument("--label-set", help="ontology label set (default: the source's, else the table's)")
    zeroshot.add_argument("--out", type=Path, help="also write the predictions table (Parquet) here")

    concepts = task("concepts", "concept identification (MONET scoring), per-concept AUROC", _cmd_eval_concepts)
    concepts.add_argument("--split", help="split to score (default: every case)")
    concepts.add_argument("--annotations", type=Path, help="CSV: an id column and one 0/1 column per concept name")
    concepts.add_argument("--id-column", default="case_id")

    probe = task("probe", "linear probe on cached features (train/val/test splits)", _cmd_eval_probe)
    probe.add_argument("--label-set", help="ontology label set (default: the source's, else the table's)")
    probe.add_argument("--regime", action="append", help="full, fraction:F or shot:K (repeatable; default all)")
    probe.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    probe.add_argument("--out", type=Path, help="also write the results as JSON here")

    classifier = eval_sub.add_parser("classifier", help="score a trained ddx model on a split: the metric collection "
                                     "with CIs resampling patients, else lesions, and per-group figures")
    classifier.add_argument("model", type=Path, help="model directory written by dermkit train ddx")
    classifier.add_argument("table", type=Path, help="case-table directory")
    classifier.add_argument("--split", action="append", default=None,
                            help="split(s) to score (default test; 'all': every case, whatever its split)")
    classifier.add_argument("--positive", default="melanoma",
                            help="class whose AUROC, sensitivity and specificity are reported (default melanoma)")
    _add_scoring(classifier, n_boot=2000)
    classifier.add_argument("--card", action="store_true",
                            help="write the results, per-group table and limitations into MODEL/README.md")
    classifier.add_argument("--out", type=Path, help="also write the predictions table (Parquet) here")
    classifier.add_argument("--cache-dir", type=Path, help="feature cache shared with training")
    classifier.add_argument("--tta", choices=["auto", *map(str, TTA_VIEW_COUNTS)], metavar="N|auto",
                            help=TTA_HELP + "; default: the count stored with the model; auto: choose it on the "
                                 "table's validation split and store it with the model")
    classifier.add_argument("--isic-csv", type=Path, metavar="FILE",
                            help="also write the ISIC challenge submission CSV (2018 or 2019 columns)")
    classifier.set_defaults(func=_cmd_eval_classifier)

    paired = eval_sub.add_parser("compare", help="paired bootstrap of balanced accuracy, A - B, on the same cases")
    paired.add_argument("a", type=Path, help="predictions table of model A")
    paired.add_argument("b", type=Path, help="predictions table of model B (must hold A's cases)")
    paired.add_argument("--complete-history", type=Path, metavar="TABLE",
                        help="only the cases whose clinical history is recorded in this case table")
    paired.add_argument("--n-boot", type=int, default=2000)
    paired.set_defaults(func=_cmd_eval_compare)

    retrieval = task("retrieval", "image-text retrieval against the cases' captions", _cmd_eval_retrieval)
    retrieval.add_argument("--split", default="test", help="split to search (default test)")
    retrieval.add_argument("--captions-per-case", type=int, default=3)
    retrieval.add_argument("--seed", type=int, default=0, help="seed of the built captions")


# -- collect (the contribution and grading platform) ---------------------------------------------

def _cmd_collect_serve(args: argparse.Namespace) -> int:
    from dermkit.core.optional import require

    uvicorn = require("uvicorn", "collect", "the collection platform")
    require("fastapi", "collect", "the collection platform")
    from dermkit.collect.app import Settings, create_app
    from dermkit.collect.auth import LoginLimits
    from dermkit.collect.grading import GradesNeeded

    settings = Settings(db_url=args.db, media_dir=args.media, secure_cookies=args.secure_cookies,
                        needed=GradesNeeded(args.dermatologist_grades, args.lay_grades),
                        login=LoginLimits(client_failures=args.login_lock_after, max_delay=args.login_max_delay),
                        trusted_proxies=tuple(args.trusted_proxy), contributions_per_hour=args.contributions_per_hour,
                        max_concurrent_uploads=args.max_concurrent_uploads, upload_wait_s=args.upload_timeout)
    # One process: the media sweep at start-up assumes no other worker is mid-upload. The app reads
    # X-Forwarded-For itself (only from --trusted-proxy), so uvicorn must not rewrite the peer address.
    uvicorn.run(create_app(settings), host=args.host, port=args.port, workers=1, log_level="info",
                proxy_headers=False)
    return 0


def _collect_session(args: argparse.Namespace, *, existing: bool = False) -> Any:
    from dermkit.core.optional import require

    require("sqlalchemy", "collect", "the collection platform")
    from sqlalchemy.engine import make_url
    from sqlalchemy.orm import Session

    from dermkit.collect.db import make_engine, upgrade
    from dermkit.core.errors import InputError

    url = make_url(args.db)
    if existing and url.get_backend_name() == "sqlite" and not Path(url.database or "").is_file():
        raise InputError(f"no database at {url.database}", field="db")
    engine = make_engine(args.db)
    upgrade(engine)
    return Session(engine)


def _cmd_collect_export(args: argparse.Namespace) -> int:
    from dermkit.collect.export import export
    from dermkit.collect.storage import MediaStore

    with _collect_session(args, existing=True) as session:
        summary = export(session, MediaStore(args.media), args.format, args.out)
    print(f"exported {summary.cases} cases ({summary.images} images) to {summary.out_dir}")
    return 0


def _cmd_collect_add_user(args: argparse.Namespace) -> int:
    import getpass
    import os

    from dermkit.collect.auth import create_user

    password = os.environ.get("DERMKIT_COLLECT_PASSWORD") or getpass.getpass(f"password for {args.username}: ")
    with _collect_session(args) as session:
        create_user(session, args.username, password, args.role)
    print(f"added {args.role} {args.username}")
    return 0


def _add_collect(sub: argparse._SubParsersAction) -> None:
    collect = sub.add_parser("collect", help="contribution and grading platform (consent, grades, export)")
    collect_sub = collect.add_subparsers(dest="collect_command", required=True)

    def common(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--db", default="sqlite:///dermkit-collect.db",
                            help="SQLAlchemy URL (default sqlite:///dermkit-collect.db; postgresql+psycopg://...)")
        parser.add_argument("--media", type=Path, default=Path("dermkit-collect-media"),
                            help="folder of the uploaded photos (default dermkit-collect-media)")

    serve = collect_sub.add_parser("serve", help="run the web app (migrates the database first)")
    common(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback only)")
    serve.add_argument("--port", type=int, default=8100)
    serve.add_argument("--dermatologist-grades", type=int, default=3, help="dermatologist grades per case (1-3)")
    serve.add_argument("--lay-grades", type=int, default=1, help="lay Monk-tone grades per case")
    serve.add_argument("--secure-cookies", action="store_true", help="mark cookies Secure (behind HTTPS)")
    serve.add_argument("--trusted-proxy", action="append", default=[], metavar="ADDR",
                       help="address or network of a reverse proxy whose X-Forwarded-For is believed (repeatable; "
                            "default none: the peer address is the client)")
    serve.add_argument("--login-lock-after", type=int, default=10, metavar="N",
                       help="lock a client after N failed sign-ins in 15 minutes (default 10)")
    serve.add_argument("--login-max-delay", type=float, default=4.0, metavar="SECONDS",
                       help="cap of the growing delay of an account's sign-ins after failures (default 4)")
    serve.add_argument("--contributions-per-hour", type=int, default=20, metavar="N",
                       help="contributions one client may post per hour (default 20; 0: no limit)")
    serve.add_argument("--max-concurrent-uploads", type=int, default=2,
                       help="photos decoded and checked at once; others wait (docs/collect.md)")
    serve.add_argument("--upload-timeout", type=float, default=30.0, metavar="SECONDS",
                       help="how long a photo waits for a decoding slot before 503 with Retry-After")
    serve.set_defaults(func=_cmd_collect_serve)
    exp = collect_sub.add_parser("export", help="write the SCIN layout or a dermkit case table")
    common(exp)
    exp.add_argument("--format", choices=("scin", "dermkit"), required=True)
    exp.add_argument("--out", type=Path, required=True, help="output folder (replaced atomically)")
    exp.set_defaults(func=_cmd_collect_export)
    user = collect_sub.add_parser("add-user", help="create an account (password from $DERMKIT_COLLECT_PASSWORD "
                                                    "or a prompt)")
    common(user)
    user.add_argument("--username", required=True)
    user.add_argument("--role", choices=("dermatologist", "lay_grader", "admin"), required=True)
    user.set_defaults(func=_cmd_collect_add_user)


# -- serve (the HTTP service and its similar-case index) ----------------------------------------

def _cmd_serve(args: argparse.Namespace) -> int:
    from dermkit.serve import ServeConfig
    from dermkit.serve.server import serve

    serve(ServeConfig(
        model=args.model, ddx_model=args.ddx_model, index=args.index, host=args.host, port=args.port,
        classes=None if args.classes is None else tuple(args.classes), max_batch=args.max_batch,
        max_wait_ms=args.max_wait_ms, threads=args.threads, store_uploads=args.store_uploads,
        cache_dir=args.cache_dir, precision=args.precision, **_serve_image_limits(args),
        api_key_file=args.api_key_file, no_api_key=args.no_api_key, rate_limit=args.rate_limit,
    ))
    return 0


def _add_serve_image_limits(serve: argparse.ArgumentParser) -> None:
    """The image gate's and the concurrency cap's flags; unset ones keep ServeConfig's defaults (docs/serve.md)."""
    limits = serve.add_argument_group("image limits and concurrency (defaults in docs/serve.md)")
    limits.add_argument("--max-pixels", type=int, help="pixels per image, as its header declares (50,000,000)")
    limits.add_argument("--min-side", type=int, help="shortest allowed image side (32)")
    limits.add_argument("--max-side", type=int, help="longest allowed image side (16384)")
    limits.add_argument("--max-request-pixels", type=int,
                        help="decoded pixels of all images of one request, JPEGs after reduced decoding (100,000,000)")
    limits.add_argument("--decode-side", type=int,
                        help="JPEGs are decoded at the smallest scale keeping both sides at least this (448)")
    limits.add_argument("--decode-threads", type=int, help="images decoded at once, all requests together (2)")
    limits.add_argument("--max-concurrent", type=int, help="requests decoding or inferring at once (8)")
    limits.add_argument("--queue-timeout", type=float, metavar="SECONDS", dest="queue_timeout_s",
                        help="how long a request over --max-concurrent waits before 503 with Retry-After (10)")


def _serve_image_limits(args: argparse.Namespace) -> dict[str, Any]:
    names = ("max_pixels", "min_side", "max_side", "max_request_pixels", "decode_side", "decode_threads",
             "max_concurrent", "queue_timeout_s")
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def _cmd_index_build(args: argparse.Namespace) -> int:
    from dermkit.serve.build import build_index

    print_json(build_index(args.model, args.tables, args.out, images=args.images, cache_dir=args.cache_dir,
                           classes=args.classes))
    return 0


def _add_serve(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser("serve", help="HTTP API and web page: differential, concepts, similar cases")
    serve.add_argument("--model", default="dermlip-lite", help="vision-language model (any load_model name)")
    serve.add_argument("--ddx-model", help="differential-diagnosis model (default: zero-shot with --model)")
    serve.add_argument("--index", type=Path, help="similar-case index from 'dermkit index build'")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback only)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--classes", nargs="+", metavar="CONDITION",
                       help="zero-shot condition list (default: ddx26 + HAM10000 + PAD-UFES-20 classes)")
    serve.add_argument("--max-batch", type=int, default=8, help="images per model call; 1 disables batching")
    serve.add_argument("--max-wait-ms", type=float, default=5.0, help="how long a batch waits to fill")
    serve.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    serve.add_argument("--precision", choices=PRECISIONS, default="auto", help=PRECISION_HELP)
    serve.add_argument("--store-uploads", type=Path, metavar="DIR",
                       help="keep uploaded photos (pixels only, EXIF stripped) in DIR; default: never stored")
    serve.add_argument("--cache-dir", type=Path, help="prompt-embedding cache (default ~/.cache/dermkit/textbank)")
    _add_serve_image_limits(serve)
    serve.add_argument("--api-key-file", type=Path, metavar="FILE",
                       help="require one of FILE's keys (one per line) as 'Authorization: Bearer KEY' or 'X-API-Key'")
    serve.add_argument("--no-api-key", action="store_true",
                       help="allow binding a non-loopback --host without --api-key-file")
    serve.add_argument("--rate-limit", metavar="N/min",
                       help="requests per client address, N/s, N/min or N/h, or 'off' "
                            "(default: off on loopback, 120/min on any other address)")
    serve.set_defaults(func=_cmd_serve)

    index = sub.add_parser("index", help="similar-case indexes for 'dermkit serve'")
    index_sub = index.add_subparsers(dest="index_command", required=True)
    build = index_sub.add_parser("build", help="embed case tables into one similar-case index")
    build.add_argument("tables", type=Path, nargs="+", metavar="TABLE", help="case-table directories")
    build.add_argument("--model", default="dermlip-lite", help="the model the server will run")
    build.add_argument("--out", type=Path, required=True, help="index directory")
    build.add_argument("--images", choices=["first", "all"], default="all",
                       help="embed every image of a case (pooled) or only the first")
    build.add_argument("--cache-dir", type=Path, help="feature cache (default ~/.cache/dermkit/features)")
    build.add_argument("--classes", nargs="+", metavar="CONDITION",
                       help="the server's --classes, for the prompt bank stored with the index (default list)")
    build.set_defaults(func=_cmd_index_build)


# -- curate -------------------------------------------------------------------------------------

def _cmd_curate_tag(args: argparse.Namespace) -> int:
    from dermkit.curate.tagging import tag_table

    summary = tag_table(args.table, workers=args.workers, out=args.out)
    if args.json:
        print_json(summary)
    else:
        print(f"tagged {summary['cases']} captions ({summary['with_condition']} name a condition): {summary['out']}")
    return 0


def _cmd_curate_dedup(args: argparse.Namespace) -> int:
    from dermkit.curate.dedup import dedup_table

    split = None if not args.split else {"by": args.by, "val": args.val, "test": args.test, "seed": args.seed}
    summary = dedup_table(args.table, max_distance=args.hash_distance, captions=not args.no_captions, split=split,
                          workers=args.workers)
    if args.json:
        print_json(summary)
    else:
        print(f"{summary['cases']} cases: {summary['clusters']} near-duplicate clusters holding "
              f"{summary['duplicated_cases']} cases ({summary['image_pairs']} image pairs, "
              f"{summary['caption_pairs']} caption links); {len(summary['leaks'])} clusters span splits")
    return 1 if summary["leaks"] else 0


def _cmd_embed(args: argparse.Namespace) -> int:
    import os

    from dermkit.curate.embed import embed_table

    manifest = embed_table(args.table, args.model, args.out, images=args.images, batch_size=args.batch_size,
                           num_workers=args.workers, precision=args.precision, progress=not args.quiet)
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun, rank 0 reports for everyone
        return 0
    if args.json:
        print_json(manifest)
    else:
        print(f"embedded {manifest['rows']} images with {manifest['world_size']} processes into {args.out}")
    return 0


def _add_curate(sub: argparse._SubParsersAction) -> None:
    curate = sub.add_parser("curate", help="tag captions and find near-duplicates at Derm1M scale")
    curate_sub = curate.add_subparsers(dest="curate_command", required=True)

    tag = curate_sub.add_parser("tag", help="tag every caption with ontology ids (writes caption_tags.parquet)")
    tag.add_argument("table", type=Path, help="case-table directory")
    tag.add_argument("--workers", type=int, default=1, help="tagging processes (default 1)")
    tag.add_argument("--out", type=Path, help="output Parquet (default TABLE/caption_tags.parquet)")
    tag.add_argument("--json", action="store_true", help="print a JSON summary")
    tag.set_defaults(func=_cmd_curate_tag)

    dedup = curate_sub.add_parser("dedup", help="cluster near-duplicate images and captions; split keeping clusters",
                                  description="Exit status: 0 no cluster spans two splits, 1 some do, 2 error.")
    dedup.add_argument("table", type=Path, help="case-table directory")
    dedup.add_argument("--hash-distance", type=int, default=20, metavar="K",
                       help="images within K of 256 perceptual-hash bits (or mirrored) are duplicates (default 20)")
    dedup.add_argument("--no-captions", action="store_true", help="ignore identical captions")
    dedup.add_argument("--split", action="store_true", help="reassign splits keeping each cluster in one split")
    dedup.add_argument("--by", choices=["patient", "lesion", "case"], default="patient", help="as for data split")
    dedup.add_argument("--val", type=float, default=0.15)
    dedup.add_argument("--test", type=float, default=0.15)
    dedup.add_argument("--seed", type=int, default=0)
    dedup.add_argument("--workers", type=int, help="hashing threads")
    dedup.add_argument("--json", action="store_true", help="print the summary as JSON")
    dedup.set_defaults(func=_cmd_curate_dedup)

    embed = sub.add_parser("embed", help="embed a case table's images (run under torchrun for many processes)")
    embed.add_argument("table", type=Path, help="case-table directory")
    embed.add_argument("--model", required=True, help="model name or directory (e.g. dermlip-lite)")
    embed.add_argument("--out", type=Path, required=True, help="output directory (img_emb/, metadata/)")
    embed.add_argument("--images", choices=["first", "all"], default="first", help="embed the first or every image")
    embed.add_argument("--batch-size", type=int, default=64)
    embed.add_argument("--workers", type=int, help="DataLoader workers per process")
    embed.add_argument("--precision", choices=PRECISIONS, default="auto", help=PRECISION_HELP)
    embed.add_argument("--quiet", action="store_true", help="no progress bar")
    embed.add_argument("--json", action="store_true", help="print the manifest as JSON")
    embed.set_defaults(func=_cmd_embed)


# -- entry point --------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dermkit", description="Dermatology AI toolkit.")
    parser.add_argument("--version", action="version", version=f"dermkit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_data(sub)
    _add_demo(sub)
    _add_train(sub)
    _add_synthesize_predict(sub)
    _add_ontology(sub)
    _add_models(sub)
    _add_eval(sub)
    _add_serve(sub)
    _add_collect(sub)
    _add_curate(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except DermkitError as error:
        print(f"dermkit: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dermkit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
