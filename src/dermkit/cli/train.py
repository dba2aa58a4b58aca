"""``dermkit train clip|ddx|gan`` and ``dermkit synthesize``.

The flags of ``train clip`` and ``train ddx`` are their config dataclasses' fields
(:mod:`dermkit.cli.config_args`), added only when the command runs or shows its help.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dermkit.cli.config_args import (
    DeferredParser,
    add_config_arguments,
    config_from_args,
)
from dermkit.cli.output import add_json, emit

# A config-driven command's (config dataclass, trainer); the loaders below import them only when the
# command runs or shows its help.
Trainer = tuple[type, Callable[[Any], dict[str, Any] | None]]


def _clip() -> Trainer:
    from dermkit.train.clip import ClipTrainConfig, train_clip

    return ClipTrainConfig, train_clip


def _ddx() -> Trainer:
    from dermkit.train.ddx_trainer import DdxTrainConfig, train_ddx

    return DdxTrainConfig, train_ddx


def _report(args: argparse.Namespace, summary: dict[str, Any] | None, headline: Callable[[dict[str, Any]], str]) -> int:
    """Print a run's summary; the other processes of a torchrun launch get None and leave it to rank 0."""
    if summary is not None:
        emit(args, summary, headline(summary))
    return 0


def _add_config_command(train_sub: argparse._SubParsersAction, name: str, help_text: str,
                        trainer: Callable[[], Trainer], headline: Callable[[dict[str, Any]], str]) -> None:
    """``train NAME``, whose flags are its config dataclass's fields, added when it runs or shows its help."""

    def populate(parser: argparse.ArgumentParser) -> None:
        add_config_arguments(parser, trainer()[0])
        add_json(parser)

    def run(args: argparse.Namespace) -> int:
        config_class, train = trainer()
        return _report(args, train(config_from_args(config_class, args)), headline)

    train_sub.add_parser(name, help=help_text, populate=populate).set_defaults(func=run)


def _cmd_gan(args: argparse.Namespace) -> int:
    from dermkit.train.gan import GanTrainConfig, train_gan

    summary = train_gan(GanTrainConfig(
        data=str(args.data), out=str(args.out), class_a=args.source, class_b=args.target,
        image_size=args.image_size, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        cycle_weight=args.cycle_weight, seed=args.seed, sample_every=args.sample_every, max_steps=args.max_steps,
        resume=args.resume))
    return _report(args, summary, lambda done: f"trained {done['step']} steps: {done['out']}/model")


def _cmd_synthesize(args: argparse.Namespace) -> int:
    from dermkit.train.gan import synthesize

    result = synthesize(args.gan, args.data, args.out, limit=args.limit, seed=args.seed)
    emit(args, result, f"wrote {result['cases']} synthetic {result['class']} cases to {result['table']}")
    return 0


def _add_gan(train_sub: argparse._SubParsersAction) -> None:
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
    add_json(gan)
    gan.set_defaults(func=_cmd_gan)


def register(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser("train", help="train models (multi-process: torchrun -m dermkit.cli train ...)")
    train_sub = train.add_subparsers(dest="train_command", required=True, parser_class=DeferredParser)
    _add_config_command(train_sub, "clip", "contrastive (CLIP or SigLIP) training on case tables", _clip,
                        lambda done: f"{'finished' if done['finished'] else 'stopped'} at epoch {done['epoch']}, "
                                     f"step {done['step']}: {done['out']}")
    _add_config_command(train_sub, "ddx", "differential diagnosis / lesion classifier from images + history", _ddx,
                        lambda done: f"best epoch {done['best_epoch']} (chosen on validation): {done.get('model')}")
    _add_gan(train_sub)

    synth = sub.add_parser("synthesize", help="translate training cases with a CycleGAN into a synthetic table")
    synth.add_argument("gan", type=Path, help="the GAN model directory (RUN/model)")
    synth.add_argument("--data", type=Path, required=True, help="case table whose training cases are translated")
    synth.add_argument("--out", type=Path, required=True, help="new case table (images beside it, OUT-images)")
    synth.add_argument("--limit", type=int, help="at most this many cases (a fixed random subset)")
    synth.add_argument("--seed", type=int, default=0)
    add_json(synth)
    synth.set_defaults(func=_cmd_synthesize)
