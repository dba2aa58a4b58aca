"""``zero-shot``: zero-shot classification of the val and test splits from the model's text tower."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from dermkit.core.errors import DermkitError
from dermkit.evaluate.tasks.base import EvalTask, Job, register_task

if TYPE_CHECKING:
    import argparse


@register_task("zero-shot")
class ZeroShotTask(EvalTask):
    fields: ClassVar[Mapping[str, Any]] = {"split": str, "val_split": str}
    needs_text = runs_models = gives_scores = True
    command, command_help = "zeroshot", "zero-shot classification into a label set"

    def run(self, job: Job) -> dict[str, Any]:
        """Zero-shot predictions of the validation and test splits."""
        from dermkit.evaluate.runner import concat, scored_record, splits_present
        from dermkit.evaluate.zeroshot import zero_shot_predictions

        if job.loaded is None:  # the suite keeps image-only models and precomputed embeddings out
            raise DermkitError(f"zero-shot needs {job.model!r} loaded with its text tower")
        settings = job.task.settings
        splits = splits_present(job.frame, [settings.get("val_split", "val"), settings.get("split", "test")])
        predictions = concat([zero_shot_predictions(job.loaded, job.frame, classes=job.dataset.classes, split=split,
                                                    features=job.features, progress=False) for split in splits])
        return scored_record(job, predictions, {})

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--split", default="test", help="split to classify (default test)")
        parser.add_argument("--label-set", help="ontology label set (default: the source's, else the table's)")
        parser.add_argument("--out", type=Path, help="also write the predictions table (Parquet) here")

    def run_command(self, args: argparse.Namespace, **scoring: Any) -> Any:
        """The split's zero-shot predictions (written to ``--out``) scored by the metric collection."""
        from dermkit.data.predictions import write_predictions
        from dermkit.evaluate.metrics.collection import score_predictions
        from dermkit.evaluate.zeroshot import zero_shot_predictions

        predictions = zero_shot_predictions(args.model, args.table, classes=args.label_set, split=args.split,
                                            images=args.images, cache_dir=args.cache_dir)
        if args.out is not None:
            write_predictions(predictions, args.out)
        return {"model": predictions.model_id, "split": args.split, **score_predictions(predictions, **scoring)}
