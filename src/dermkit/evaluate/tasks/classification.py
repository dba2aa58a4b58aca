"""``classification``: metrics of predictions tables made elsewhere (e.g. a differential model)."""

from collections.abc import Mapping
from typing import Any

from dermkit.evaluate.tasks.base import EvalTask, register_task


@register_task("classification")
class ClassificationTask(EvalTask):
    fields = {"predictions": (str, list), "card": str}
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
