"""``concepts``: concept identification (MONET scoring), per-concept AUROC."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from dermkit.evaluate.tasks.base import EvalTask, Job, register_task

if TYPE_CHECKING:
    import argparse


@register_task("concepts")
class ConceptsTask(EvalTask):
    fields: ClassVar[Mapping[str, Any]] = {"split": str, "annotations": str}
    needs_text = runs_models = True
    command, command_help = "concepts", "concept identification (MONET scoring), per-concept AUROC"

    def check(self, check: Any, values: Mapping[str, Any], lines: Mapping[str, int], at: int,
              earlier: Mapping[str, Any]) -> None:
        if "annotations" in values and not check.path_of(values["annotations"]).is_file():
            raise check.fail("annotations file does not exist", lines["annotations"], "annotations")

    def run(self, job: Job) -> dict[str, Any]:
        """MONET concept scores: mean AUROC with CI and strata; per-concept figures in ``details``."""
        from dermkit.evaluate.concepts import concept_report
        from dermkit.evaluate.runner import scoring_options
        from dermkit.evaluate.suite import resolve_path

        assert job.loaded is not None and job.features is not None
        annotations = job.task.settings.get("annotations")
        report = concept_report(job.loaded, job.frame,
                                None if annotations is None else resolve_path(annotations, job.suite.path.parent),
                                split=job.task.settings.get("split"), features=job.features, progress=False,
                                **scoring_options(job.suite))
        return {key: report.pop(key) for key in ("n", "resampled_by", "level", "n_boot", "min_stratum", "metrics",
                                                 "strata")} | {"details": report}

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--split", help="split to score (default: every case)")
        parser.add_argument("--annotations", type=Path, help="CSV: an id column and one 0/1 column per concept name")
        parser.add_argument("--id-column", default="case_id")

    def run_command(self, args: argparse.Namespace, **scoring: Any) -> Any:
        from dermkit.evaluate.concepts import concept_report

        return concept_report(args.model, args.table, args.annotations, split=args.split, id_column=args.id_column,
                              images=args.images, cache_dir=args.cache_dir, **scoring)
