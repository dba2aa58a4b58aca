"""``classification``: metrics of predictions tables made elsewhere (e.g. a differential model)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from dermkit.evaluate.tasks.base import EvalTask, register_task

if TYPE_CHECKING:
    from dermkit.evaluate.suite import Suite, Task


@register_task("classification")
class ClassificationTask(EvalTask):
    fields: ClassVar[Mapping[str, Any]] = {"predictions": (str, list), "card": str}
    takes_models = False

    def check(self, check: Any, values: Mapping[str, Any], lines: Mapping[str, int], at: int,
              earlier: Mapping[str, Any]) -> None:
        from dermkit.evaluate.suite import _item_lines

        if "card" in values and not check.path_of(values["card"]).is_dir():
            raise check.fail("card must name an existing model directory", lines["card"], "card")
        if "predictions" not in values:
            raise check.fail("a classification task needs 'predictions' (Parquet files)", at)
        files = values["predictions"] if isinstance(values["predictions"], list) else [values["predictions"]]
        for item, item_line in zip(files, _item_lines(files, lines["predictions"])):
            if not check.path_of(str(item)).is_file():
                raise check.fail(f"predictions file {check.path_of(str(item))} does not exist", item_line,
                                 "predictions")

    def select(self, check: Any, values: Mapping[str, Any], lines: Mapping[str, int], at: int,
               models: tuple[str, ...], datasets: tuple[str, ...],
               earlier: Mapping[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return (), ()  # the predictions tables name their model and dataset

    def run_once(self, task: Task, suite: Suite, out: Path) -> list[dict[str, Any]] | None:
        """One record per predictions table, scored on its test rows when it has them."""
        from dermkit.data.predictions import read_predictions, write_predictions
        from dermkit.evaluate.runner import evaluate_predictions, predictions_path
        from dermkit.evaluate.suite import resolve_path

        files = task.settings["predictions"]
        records = []
        for item in files if isinstance(files, list) else [files]:
            predictions = read_predictions(resolve_path(str(item), suite.path.parent))
            splits = predictions.frame["split"]
            split = "test" if (splits == "test").any() else None
            if split is not None:
                predictions = predictions.where(splits == split)
            sources = predictions.frame["source"].dropna().unique()
            dataset = str(sources[0]) if len(sources) == 1 else Path(str(item)).stem
            path = predictions_path(task.name, predictions.model_id, dataset)
            write_predictions(predictions, out / path)
            record = {"task": task.name, "type": task.type, "model": predictions.model_id, "dataset": dataset,
                      "predictions": str(path), "split": split,
                      **evaluate_predictions(predictions, suite, suite.options.hierarchy_levels,
                                             task.settings.get("metrics"))}
            if task.settings.get("card"):
                from dermkit.evaluate.card import source_data, write_evaluation_card

                card_model = resolve_path(str(task.settings["card"]), suite.path.parent)
                record["card"] = str(write_evaluation_card(card_model, record, data=source_data(dataset, split)))
            records.append(record)
        return records
