"""``zero-shot``: zero-shot classification of the val and test splits from the model's text tower."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from dermkit.core.errors import DermkitError
from dermkit.evaluate.tasks.base import EvalTask, Job, register_task


@register_task("zero-shot")
class ZeroShotTask(EvalTask):
    fields: ClassVar[Mapping[str, Any]] = {"split": str, "val_split": str}
    needs_text = runs_models = gives_scores = True

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
