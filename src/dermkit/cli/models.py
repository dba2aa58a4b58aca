"""``dermkit models``: list the model families, export a model in open_clip's layout."""

from __future__ import annotations

import argparse
from pathlib import Path

from dermkit.cli.output import add_json, emit


def _cmd_list(args: argparse.Namespace) -> int:
    from dermkit.models import list_models

    names = list_models()
    emit(args, names, "\n".join(names) + "\nalso: open_clip:ARCH[:TAG], hf-hub:ORG/REPO, local-dir:PATH or a "
                                         "directory path")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    import dataclasses

    from dermkit.models import ModelCard, export_model, load_model

    loaded = load_model(args.name)
    card = loaded.card or ModelCard(model_id=args.out.name, base_model=args.name)
    if args.model_id:
        card = dataclasses.replace(card, model_id=args.model_id)
    out = export_model(loaded, args.out, card, overwrite=args.overwrite)
    emit(args, {"out": str(out), "model_id": card.model_id}, f"exported {args.name} to {out}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    models = sub.add_parser("models", help="list model families and export models in open_clip's layout")
    models_sub = models.add_subparsers(dest="models_command", required=True)

    listing = models_sub.add_parser("list", help="list the registered model families")
    add_json(listing)
    listing.set_defaults(func=_cmd_list)

    export = models_sub.add_parser("export", help="export a model (any accepted name) with a model card")
    export.add_argument("name", help="model name, e.g. dermlip-lite, hf-hub:ORG/REPO or a directory")
    export.add_argument("--out", type=Path, required=True, help="export directory (open_clip layout)")
    export.add_argument("--model-id", help="id written in the model card (default: the card's or OUT's name)")
    export.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    add_json(export)
    export.set_defaults(func=_cmd_export)
