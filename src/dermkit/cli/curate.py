"""``dermkit curate tag|dedup`` and ``dermkit embed``: curation at Derm1M scale."""

from __future__ import annotations

import argparse
from pathlib import Path

from dermkit.cli.common import add_split_arguments
from dermkit.cli.output import add_json, emit
from dermkit.core.precision import PRECISION_HELP, PRECISIONS


def _cmd_tag(args: argparse.Namespace) -> int:
    from dermkit.curate.tagging import tag_table

    summary = tag_table(args.table, workers=args.workers, out=args.out)
    emit(args, summary,
         f"tagged {summary['cases']} captions ({summary['with_condition']} name a condition): {summary['out']}")
    return 0


def _cmd_dedup(args: argparse.Namespace) -> int:
    from dermkit.curate.dedup import dedup_table

    split = None if not args.split else {"by": args.by, "val": args.val, "test": args.test, "seed": args.seed}
    summary = dedup_table(args.table, max_distance=args.hash_distance, captions=not args.no_captions, split=split,
                          workers=args.workers)
    emit(args, summary, f"{summary['cases']} cases: {summary['clusters']} near-duplicate clusters holding "
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
    emit(args, manifest, f"embedded {manifest['rows']} images with {manifest['world_size']} processes into {args.out}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    curate = sub.add_parser("curate", help="tag captions and find near-duplicates at Derm1M scale")
    curate_sub = curate.add_subparsers(dest="curate_command", required=True)

    tag = curate_sub.add_parser("tag", help="tag every caption with ontology ids (writes caption_tags.parquet)")
    tag.add_argument("table", type=Path, help="case-table directory")
    tag.add_argument("--workers", type=int, default=1, help="tagging processes (default 1)")
    tag.add_argument("--out", type=Path, help="output Parquet (default TABLE/caption_tags.parquet)")
    add_json(tag)
    tag.set_defaults(func=_cmd_tag)

    dedup = curate_sub.add_parser("dedup", help="cluster near-duplicate images and captions; split keeping clusters",
                                  description="Exit status: 0 no cluster spans two splits, 1 some do, 2 error.")
    dedup.add_argument("table", type=Path, help="case-table directory")
    dedup.add_argument("--hash-distance", type=int, default=20, metavar="K",
                       help="images within K of 256 perceptual-hash bits (or mirrored) are duplicates (default 20)")
    dedup.add_argument("--no-captions", action="store_true", help="ignore identical captions")
    dedup.add_argument("--split", action="store_true", help="reassign splits keeping each cluster in one split")
    add_split_arguments(dedup)
    dedup.add_argument("--workers", type=int, help="hashing threads")
    add_json(dedup)
    dedup.set_defaults(func=_cmd_dedup)

    embed = sub.add_parser("embed", help="embed a case table's images (run under torchrun for many processes)")
    embed.add_argument("table", type=Path, help="case-table directory")
    embed.add_argument("--model", required=True, help="model name or directory (e.g. dermlip-lite)")
    embed.add_argument("--out", type=Path, required=True, help="output directory (img_emb/, metadata/)")
    embed.add_argument("--images", choices=["first", "all"], default="first", help="embed the first or every image")
    embed.add_argument("--batch-size", type=int, default=64)
    embed.add_argument("--workers", type=int, help="DataLoader workers per process")
    embed.add_argument("--precision", choices=PRECISIONS, default="auto", help=PRECISION_HELP)
    embed.add_argument("--quiet", action="store_true", help="no progress bar")
    add_json(embed)
    embed.set_defaults(func=_cmd_embed)
