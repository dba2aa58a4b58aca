"""``dermkit eval`` (a suite file or one task on a case table) and ``dermkit report``.

The one-task commands come from the task registry: every task type with a ``command`` gets
``dermkit eval COMMAND MODEL TABLE`` with the shared flags here and its own from ``add_arguments``,
so adding a task file adds its command with no edit here.
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path
from typing import Any

from dermkit.cli.common import TTA_HELP
from dermkit.cli.output import emit
from dermkit.core.errors import DermkitError
from dermkit.core.precision import PRECISION_HELP, PRECISIONS
from dermkit.evaluate.tasks import TASKS, EvalTask
from dermkit.models.transforms import TTA_VIEW_COUNTS


def _cmd_features(args: argparse.Namespace) -> int:
    from dermkit.models.encoding import extract_image_features

    features = extract_image_features(
        args.model, args.table, images=args.images, cache_dir=args.cache_dir, batch_size=args.batch_size,
        num_workers=args.workers, precision=args.precision,
    )
    emit(args, {key: features.meta[key] for key in ("model", "n_images", "embed_dim", "precision_used")})
    return 0


def _scoring(args: argparse.Namespace) -> dict[str, Any]:
    """The metric collection's bootstrap and strata settings from an ``eval`` command's flags."""
    return {"n_boot": args.n_boot, "min_stratum": args.min_stratum}


def _cmd_task(task: EvalTask, args: argparse.Namespace) -> int:
    emit(args, task.run_command(args, **_scoring(args)))
    return 0


def _cmd_classifier(args: argparse.Namespace) -> int:
    from dermkit.data.predictions import write_predictions
    from dermkit.evaluate.isic import to_isic_csv, without_zero_weight
    from dermkit.evaluate.metrics.collection import score_predictions
    from dermkit.models.families.ddx import load_ddx, store_tta
    from dermkit.predict import (
        choose_tta,
        describe_coverage,
        label_space_coverage,
        predict_table,
    )

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
    emit(args, result)
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from dermkit.data.predictions import read_predictions
    from dermkit.evaluate.ddx_compare import compare, complete_history_mask

    a, b = read_predictions(args.a), read_predictions(args.b)
    mask = None if args.complete_history is None else complete_history_mask(a, args.complete_history)
    emit(args, compare(a, b, mask=mask, n_boot=args.n_boot))
    return 0


def _cmd_suite(args: argparse.Namespace) -> int:
    from dermkit.evaluate.runner import run_suite
    from dermkit.evaluate.suite import load_suite

    suite = load_suite(args.suite)  # fails here, naming the line, before any model runs
    if args.check:
        counts = {"datasets": len(suite.datasets), "models": len(suite.models), "tasks": len(suite.tasks)}
        emit(args, {"suite": str(args.suite), **counts, "ok": True},
             f"{args.suite}: {counts['datasets']} datasets, {counts['models']} models, {counts['tasks']} tasks: ok")
        return 0
    if args.out is None:
        raise DermkitError("--out RUN is required to run a suite")
    document = run_suite(suite, args.out, progress=not args.quiet, split=args.split)
    results = Path(args.out) / "results.json"
    emit(args, {"results": len(document["results"]), "wall_s": document["wall_s"], "out": str(results)},
         f"{len(document['results'])} results in {document['wall_s']} s: {results}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from dermkit.evaluate.report import write_report

    html, markdown = write_report(args.run, args.out, args.markdown)
    emit(args, {"html": str(html), "markdown": str(markdown)}, f"wrote {html} and {markdown}")
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


def _add_classifier(eval_sub: argparse._SubParsersAction) -> None:
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
    classifier.set_defaults(func=_cmd_classifier)

    paired = eval_sub.add_parser("compare", help="paired bootstrap of balanced accuracy, A - B, on the same cases")
    paired.add_argument("a", type=Path, help="predictions table of model A")
    paired.add_argument("b", type=Path, help="predictions table of model B (must hold A's cases)")
    paired.add_argument("--complete-history", type=Path, metavar="TABLE",
                        help="only the cases whose clinical history is recorded in this case table")
    paired.add_argument("--n-boot", type=int, default=2000)
    paired.set_defaults(func=_cmd_compare)


def _model_table_parser(eval_sub: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:
    """An ``eval`` command on a model and a case table, with the embedding flags they all take."""
    parser = eval_sub.add_parser(name, help=help_text)
    parser.add_argument("model", help="model name for dermkit.models.load_model")
    parser.add_argument("table", type=Path, help="case-table directory")
    parser.add_argument("--images", choices=["first", "all"], default="first",
                        help="embed each case's first image, or all of them (averaged)")
    parser.add_argument("--cache-dir", type=Path, help="feature cache (default $DERMKIT_CACHE_DIR/features)")
    return parser


def register(sub: argparse._SubParsersAction) -> None:
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
    suite.set_defaults(func=_cmd_suite)

    report = sub.add_parser("report", help="HTML + Markdown report of a suite run (never re-runs a model)")
    report.add_argument("run", type=Path, help="run directory written by dermkit eval SUITE.yaml")
    report.add_argument("--out", type=Path, required=True, help="HTML file to write")
    report.add_argument("--markdown", type=Path, help="Markdown file (default: OUT with .md)")
    report.set_defaults(func=_cmd_report)

    features = _model_table_parser(eval_sub, "features", "extract and cache image embeddings of every case")
    features.add_argument("--batch-size", type=int, default=64)
    features.add_argument("--workers", type=int, help="decoding processes (default: cores - 1)")
    features.add_argument("--precision", choices=PRECISIONS, default="auto", help=PRECISION_HELP)
    features.set_defaults(func=_cmd_features)

    _add_classifier(eval_sub)

    for task in TASKS.values():
        if task.command is not None:
            parser = _model_table_parser(eval_sub, task.command, task.command_help)
            _add_scoring(parser)
            task.add_arguments(parser)
            parser.set_defaults(func=partial(_cmd_task, task))
