"""What a suite task type declares: its fields, its checks, and which models and datasets it runs on."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from dermkit.evaluate.suite import Task, _Checker

TASKS: dict[str, EvalTask] = {}


class EvalTask:
    """One task type of a suite; subclasses set the class attributes and override what differs."""

    type: ClassVar[str]
    fields: ClassVar[Mapping[str, Any]] = {}  # allowed keys beyond type/models/datasets/metrics, with their types
    needs_text: ClassVar[bool] = False  # skips image-only models; listing one is an error
    runs_models: ClassVar[bool] = False  # needs at least one model and one dataset
    takes_models: ClassVar[bool] = True  # False: its models come from elsewhere, 'models' is refused
    gives_scores: ClassVar[bool] = False  # a binary task may derive from its probabilities

    def metrics(self) -> Sequence[str]:
        """Metric names ``metrics:`` may list."""
        from dermkit.evaluate.suite import TASK_METRICS

        return TASK_METRICS

    def check(self, check: _Checker, values: Mapping[str, Any], lines: Mapping[str, int], at: int,
              earlier: Mapping[str, Task]) -> None:
        """Type-specific checks of the task's settings; raise ``check.fail(...)``."""

    def select(self, check: _Checker, values: Mapping[str, Any], lines: Mapping[str, int], at: int,
               models: tuple[str, ...], datasets: tuple[str, ...],
               earlier: Mapping[str, Task]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The models and datasets the task runs on, from those it was given or defaulted to."""
        return models, datasets


def register_task(name: str) -> Callable[[type[EvalTask]], type[EvalTask]]:
    """Class decorator: make the task type ``name`` known to suites."""

    def register(cls: type[EvalTask]) -> type[EvalTask]:
        if name in TASKS:
            raise ValueError(f"task type {name!r} is registered twice")
        cls.type = name
        TASKS[name] = cls()
        return cls

    return register
