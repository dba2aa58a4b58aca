"""``zero-shot``: zero-shot classification of the val and test splits from the model's text tower."""

from dermkit.evaluate.tasks.base import EvalTask, register_task


@register_task("zero-shot")
class ZeroShotTask(EvalTask):
    fields = {"split": str, "val_split": str}
    needs_text = runs_models = gives_scores = True
