"""``linear-probe``: logistic regression on frozen features over regimes and seeds."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from dermkit.evaluate.tasks.base import EvalTask, Job, register_task

if TYPE_CHECKING:
    import argparse

_REGIME = re.compile(r"^(full|fraction:(0?\.\d+|1(\.0*)?)|shot:[1-9]\d*)$")


@register_task("linear-probe")
class LinearProbeTask(EvalTask):
    fields: ClassVar[Mapping[str, Any]] = {"regimes": list, "seeds": list, "cs": list}
    runs_models = gives_scores = True
    command, command_help = "probe", "linear probe on cached features (train/val/test splits)"

    def check(self, check: Any, values: Mapping[str, Any], lines: Mapping[str, int], at: int,
              earlier: Mapping[str, Any]) -> None:
        from dermkit.evaluate.suite import _item_lines

        for regime, regime_line in zip(values.get("regimes", []), _item_lines(values.get("regimes", []), at)):
            if not isinstance(regime, str) or not _REGIME.match(regime):
                raise check.fail(f"unknown regime {regime!r}; use full, fraction:F or shot:K", regime_line, "regimes")
        check.typed_items(values, "seeds", int, at)
        check.typed_items(values, "cs", float, at)

    def run(self, job: Job) -> dict[str, Any]:
        """Probe summary over regimes and seeds, and the full-data probe's val and test predictions."""
        from dermkit.evaluate.linear_probe import (
            DEFAULT_CS,
            DEFAULT_REGIMES,
            DEFAULT_SEEDS,
            probe_predictions,
            run_linear_probe,
            split_data,
        )
        from dermkit.evaluate.runner import scored_record
        from dermkit.evaluate.zeroshot import resolve_classes

        settings = job.task.settings
        class_ids = resolve_classes(job.dataset.classes, job.frame)
        data, cases = split_data(job.frame, job.features, class_ids)
        cs = [float(c) for c in settings.get("cs", DEFAULT_CS)]
        summary = run_linear_probe(data, settings.get("regimes", DEFAULT_REGIMES), settings.get("seeds", DEFAULT_SEEDS), cs)
        predictions, chosen = probe_predictions(data, cases, class_ids, job.model, summary, cs)
        details = {"n_train": int(data.train_y.size), "n_val": int(data.val_y.size), "n_test": int(data.test_y.size),
                   "C": chosen, "regimes": summary}
        return scored_record(job, predictions, details)

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--label-set", help="ontology label set (default: the source's, else the table's)")
        parser.add_argument("--regime", action="append", help="full, fraction:F or shot:K (repeatable; default all)")
        parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
        parser.add_argument("--out", type=Path, help="also write the results as JSON here")

    def run_command(self, args: argparse.Namespace, **scoring: Any) -> Any:
        from dermkit.evaluate.linear_probe import DEFAULT_REGIMES, linear_probe_report

        return linear_probe_report(args.model, args.table, classes=args.label_set,
                                   regimes=args.regime or DEFAULT_REGIMES, seeds=args.seeds,
                                   images=args.images, cache_dir=args.cache_dir, out=args.out, **scoring)
