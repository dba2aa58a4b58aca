"""``concepts``: concept identification (MONET scoring), per-concept AUROC."""

from collections.abc import Mapping
from typing import Any

from dermkit.evaluate.tasks.base import EvalTask, register_task


@register_task("concepts")
class ConceptsTask(EvalTask):
    fields = {"split": str, "annotations": str}
    needs_text = runs_models = True

    def check(self, check: Any, values: Mapping[str, Any], lines: Mapping[str, int], at: int,
              earlier: Mapping[str, Any]) -> None:
        if "annotations" in values and not check.path_of(values["annotations"]).is_file():
            raise check.fail("annotations file does not exist", lines["annotations"], "annotations")
