"""``dermkit data``: import, split, check and describe case tables."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from dermkit.cli.common import add_split_arguments, key_values
from dermkit.cli.output import add_json, emit


def _cmd_import(args: argparse.Namespace) -> int:
    from dermkit.data.importers import run_import

    result = run_import(
        args.source,
        args.path,
        args.out,
        on_error=args.on_error,
        options=key_values(args.option, "--option"),
        check_images=not args.no_image_check,
        split=args.split,
    )
    summary = {"out": str(result.out_dir), "cases": result.cases, "rejected": len(result.problems),
               **({"split": args.split} if args.split else {})}
    emit(args, summary, f"imported {result.cases} cases into {result.out_dir}"
         + (f", all in split {args.split}" if args.split else "")
         + (f" ({len(result.problems)} rejected, see import_report.json)" if result.problems else ""))
    return 0


def _cmd_split(args: argparse.Namespace) -> int:
    from dermkit.data.splits import format_split_counts, set_all_splits, split_table

    if args.all is not None:
        summary = set_all_splits(args.table, args.all)
        headline = f"put all {summary['cases']} cases of {args.table} in split {args.all}"
    else:
        summary = split_table(args.table, by=args.by, val=args.val, test=args.test, seed=args.seed,
                              temporal=args.temporal, link_images=args.link_images)
        headline = f"split {summary['cases']} cases by {args.by} in {args.table}"
    emit(args, summary, lambda: headline + "\n" + format_split_counts(summary["counts"]))
    return 0


def _cmd_check_leaks(args: argparse.Namespace) -> int:
    from dermkit.data.leaks import check_table, format_leaks

    report = check_table(args.table, hash_distance=None if args.no_images else args.hash_distance)
    emit(args, report.as_dict(), lambda: format_leaks(report))
    return 0 if report.clean else 1


def _cmd_stats(args: argparse.Namespace) -> int:
    from dermkit.data.stats import format_stats, plot_stats, stats_for_table

    stats = stats_for_table(args.table)
    plots = plot_stats(stats, args.plots) if args.plots else []
    emit(args, {**stats, "plots": [str(p) for p in plots]},
         lambda: format_stats(stats) + (f"\nwrote {len(plots)} charts to {args.plots}" if plots else ""))
    return 0


def _cmd_shard(args: argparse.Namespace) -> int:
    from dermkit.data.shards import write_shards

    manifest = write_shards(args.table, args.out, samples_per_shard=args.samples_per_shard)
    emit(args, manifest,
         f"wrote {manifest['samples']} samples in {len(manifest['shards'])} shards to {args.out}"
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


def register(sub: argparse._SubParsersAction) -> None:
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
    add_json(imp)
    imp.set_defaults(func=_cmd_import)

    # Literal choices and defaults (mirroring dermkit.data.splits/leaks) keep scipy out of --help.
    split = data_sub.add_parser("split", help="assign leak-free train/val/test splits in place")
    split.add_argument("table", type=Path, help="case-table directory")
    add_split_arguments(split)
    split.add_argument("--temporal", action="store_true", help="earliest cases in train, latest in test")
    split.add_argument("--link-images", type=int, metavar="K",
                       help="also keep cases with images within K of 256 hash bits in one split (reads every image)")
    split.add_argument("--all", choices=["train", "val", "test"], metavar="SPLIT",
                       help="put every case in SPLIT instead (an external test set: --all test)")
    add_json(split)
    split.set_defaults(func=_cmd_split)

    leaks = data_sub.add_parser("check-leaks", help="find patients, lesions and images shared across splits",
                                description="Exit status: 0 clean, 1 leaks found, 2 error.")
    leaks.add_argument("table", type=Path, help="case-table directory")
    leaks.add_argument("--hash-distance", type=int, default=20, metavar="K",
                       help="images within K of 256 perceptual-hash bits count as identical (default 20)")
    leaks.add_argument("--no-images", action="store_true", help="skip the image comparison")
    add_json(leaks)
    leaks.set_defaults(func=_cmd_check_leaks)

    stats = data_sub.add_parser("stats", help="counts per label, ontology level, skin type, site, age, ...")
    stats.add_argument("table", type=Path, help="case-table directory")
    stats.add_argument("--plots", type=Path, metavar="DIR", help="also write PNG bar charts to DIR")
    add_json(stats)
    stats.set_defaults(func=_cmd_stats)

    shard = data_sub.add_parser("shard", help="write WebDataset-style tar shards (image, caption, case JSON)")
    shard.add_argument("table", type=Path, help="case-table directory")
    shard.add_argument("--out", type=Path, required=True, help="shard directory (tars + index.parquet)")
    shard.add_argument("--samples-per-shard", type=int, default=1000, help="image-text pairs per tar (default 1000)")
    add_json(shard)
    shard.set_defaults(func=_cmd_shard)
