"""``binary``: positive-vs-rest from an earlier task's probabilities, threshold chosen on val."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from dermkit.core.errors import InputError
from dermkit.evaluate.tasks.base import EvalTask, Job, register_task

if TYPE_CHECKING:
    from dermkit.data.predictions import Predictions

NEGATIVE_CLASS = "rest"



@register_task("binary")
class BinaryTask(EvalTask):
    fields: ClassVar[Mapping[str, Any]] = {"from": str, "positive": list, "threshold": str, "target_sensitivity": float}
    takes_models = loads_model = False

    def metrics(self) -> Sequence[str]:
        from dermkit.evaluate.metrics.collection import BINARY_METRICS

        return BINARY_METRICS

    def check(self, check: Any, values: Mapping[str, Any], lines: Mapping[str, int], at: int,
              earlier: Mapping[str, Any]) -> None:
        from dermkit.evaluate.suite import _item_lines
        from dermkit.evaluate.tasks import TASKS
        from dermkit.ontology import default_ontology

        for key in ("from", "positive"):
            if key not in values:
                raise check.fail(f"a binary task needs {key!r}", at)
        source = earlier.get(values["from"])
        if source is None or not TASKS[source.type].gives_scores:
            candidates = [name for name, task in earlier.items() if TASKS[task.type].gives_scores]
            raise check.fail(f"'from' must name an earlier zero-shot or linear-probe task ({', '.join(candidates) or 'none'})",
                             lines["from"], "from")
        conditions = default_ontology().conditions
        for item, item_line in zip(values["positive"], _item_lines(values["positive"], lines["positive"])):
            if conditions.find(str(item)) is None:
                raise check.fail(f"unknown condition {item!r}", item_line, "positive")
        if "threshold" in values:
            check.choice(values["threshold"], ("youden", "sensitivity"), lines["threshold"], "threshold",
                         "threshold rule")

    def select(self, check: Any, values: Mapping[str, Any], lines: Mapping[str, int], at: int,
               models: tuple[str, ...], datasets: tuple[str, ...],
               earlier: Mapping[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        source = earlier[values["from"]]
        for dataset in datasets:
            if dataset not in source.datasets:
                raise check.fail(f"dataset {dataset!r} is not scored by task {source.name!r}",
                                 lines.get("datasets", at), "datasets")
        return source.models, datasets if "datasets" in values else source.datasets

    def run(self, job: Job) -> dict[str, Any]:
        """Positive-vs-rest with an operating threshold chosen on validation rows, scored on test rows."""
        from dermkit.data.predictions import write_predictions
        from dermkit.evaluate.runner import (
            evaluate_predictions,
            predictions_path,
            task_split,
        )
        from dermkit.metrics import UndefinedMetricError, choose_threshold

        task = job.task
        predictions, name = binary_view(job.scored[(task.settings["from"], job.model, job.dataset.name)],
                                        task.settings["positive"])
        val = predictions.where(predictions.frame["split"] == "val").labelled()
        test = predictions.where(predictions.frame["split"] == task_split(task))
        rule = task.settings.get("threshold", "youden")
        try:
            threshold = choose_threshold(val.probs()[:, 1], val.labels() == 1, rule,
                                         task.settings.get("target_sensitivity", 0.9))
        except UndefinedMetricError as exc:
            raise InputError(f"task {task.name!r}: cannot choose a threshold on the validation split: {exc}") from exc
        path = predictions_path(task.name, job.model, job.dataset.name)
        write_predictions(predictions, job.out / path)
        result = evaluate_predictions(test, job.suite, metrics=task.settings.get("metrics"), threshold=threshold)
        result["threshold"] = {"value": threshold, "rule": rule, "chosen_on": "val", "n_val": len(val),
                               "positive": name}
        return {"predictions": str(path), "split": task_split(task), **result}


def binary_view(source: Predictions, positive: Sequence[str]) -> tuple[Predictions, str]:
    """Two-class predictions: score = summed probability of classes at or below a ``positive`` node."""
    import numpy as np

    from dermkit.data.predictions import UNLABELLED, Predictions
    from dermkit.ontology import default_ontology

    conditions = default_ontology().conditions
    wanted = {conditions.get(term).id for term in positive}
    is_positive = np.array([any(node.id in wanted for node in conditions.path(c)) for c in source.classes])
    if not is_positive.any() or is_positive.all():
        raise InputError(f"positive {sorted(wanted)} must cover some but not all of the classes {list(source.classes)}",
                         field="positive")
    score = np.clip(source.probs()[:, is_positive].sum(axis=1), 0.0, 1.0)
    labels = source.labels()
    binary = np.where(labels == UNLABELLED, UNLABELLED, is_positive[np.maximum(labels, 0)].astype(np.int64))
    name = "+".join(sorted(wanted))
    frame = source.frame.assign(label=binary.astype(np.int32), probs=list(np.c_[1 - score, score]), target=None)
    return Predictions(frame, source.model_id, (NEGATIVE_CLASS, name)), name
