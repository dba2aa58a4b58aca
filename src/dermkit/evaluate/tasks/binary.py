"""``binary``: positive-vs-rest from an earlier task's probabilities, threshold chosen on val."""

from collections.abc import Mapping, Sequence
from typing import Any

from dermkit.evaluate.tasks.base import EvalTask, register_task


@register_task("binary")
class BinaryTask(EvalTask):
    fields = {"from": str, "positive": list, "threshold": str, "target_sensitivity": float}
    takes_models = False

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
