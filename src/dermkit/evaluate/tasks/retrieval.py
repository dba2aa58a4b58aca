"""``retrieval``: image-text retrieval against captions built from the cases."""

from collections.abc import Mapping
from typing import Any

from dermkit.evaluate.tasks.base import EvalTask, register_task


@register_task("retrieval")
class RetrievalTask(EvalTask):
    fields = {"split": str, "captions_per_case": int, "seed": int, "ks": list}
    needs_text = runs_models = True

    def check(self, check: Any, values: Mapping[str, Any], lines: Mapping[str, int], at: int,
              earlier: Mapping[str, Any]) -> None:
        from dermkit.evaluate.suite import _item_lines

        for item, item_line in zip(values.get("ks", []), _item_lines(values.get("ks", []), at)):
            check.typed(item, int, item_line, "ks")
