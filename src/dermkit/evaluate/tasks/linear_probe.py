"""``linear-probe``: logistic regression on frozen features over regimes and seeds."""

import re
from collections.abc import Mapping
from typing import Any

from dermkit.evaluate.tasks.base import EvalTask, register_task

_REGIME = re.compile(r"^(full|fraction:(0?\.\d+|1(\.0*)?)|shot:[1-9]\d*)$")


@register_task("linear-probe")
class LinearProbeTask(EvalTask):
    fields = {"regimes": list, "seeds": list, "cs": list}
    runs_models = gives_scores = True

    def check(self, check: Any, values: Mapping[str, Any], lines: Mapping[str, int], at: int,
              earlier: Mapping[str, Any]) -> None:
        from dermkit.evaluate.suite import _item_lines

        for regime, regime_line in zip(values.get("regimes", []), _item_lines(values.get("regimes", []), at)):
            if not isinstance(regime, str) or not _REGIME.match(regime):
                raise check.fail(f"unknown regime {regime!r}; use full, fraction:F or shot:K", regime_line, "regimes")
        for item, item_line in zip(values.get("seeds", []), _item_lines(values.get("seeds", []), at)):
            check.typed(item, int, item_line, "seeds")
        for item, item_line in zip(values.get("cs", []), _item_lines(values.get("cs", []), at)):
            check.typed(item, float, item_line, "cs")
