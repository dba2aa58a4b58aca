"""What a task type declares: its suite fields, checks and models/datasets, and its ``dermkit eval`` command."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import argparse

    import pandas as pd

    from dermkit.data.predictions import Predictions
    from dermkit.evaluate.suite import Dataset, Suite, Task, _Checker
    from dermkit.models.embeddings import ImageFeatures
    from dermkit.models.loaded import LoadedModel

TASKS: dict[str, EvalTask] = {}


@dataclass
class Job:
    """One (task, model, dataset) of a run, with what the runner loaded for it."""

    task: Task
    dataset: Dataset
    model: str
    frame: pd.DataFrame
    loaded: LoadedModel | None  # None for precomputed embeddings, and for tasks that load no model
    features: ImageFeatures | None
    suite: Suite
    out: Path
    scored: dict[tuple[str, str, str], Predictions]  # (task, model, dataset) -> predictions a later task reads


class EvalTask:
    """One task type of a suite; subclasses set the class attributes and override what differs."""

    type: ClassVar[str]
    fields: ClassVar[Mapping[str, Any]] = {}  # allowed keys beyond type/models/datasets/metrics, with their types
    needs_text: ClassVar[bool] = False  # skips image-only models; listing one is an error
    runs_models: ClassVar[bool] = False  # needs at least one model and one dataset
    takes_models: ClassVar[bool] = True  # False: its models come from elsewhere, 'models' is refused
    gives_scores: ClassVar[bool] = False  # a binary task may derive from its probabilities
    loads_model: ClassVar[bool] = True  # False: it reads an earlier task's predictions instead
    command: ClassVar[str | None] = None  # ``dermkit eval COMMAND MODEL TABLE``; None: the task runs in suites only
    command_help: ClassVar[str] = ""  # the command's line in ``dermkit eval --help``

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

    def run(self, job: Job) -> dict[str, Any]:
        """One (task, model, dataset): write its predictions under ``job.out``, return its record."""
        raise NotImplementedError(f"task type {self.type!r} runs once per suite (run_once), not per job")

    def run_once(self, task: Task, suite: Suite, out: Path) -> list[dict[str, Any]] | None:
        """Tasks that run once per suite, not per (model, dataset), return their records; others None."""
        return None

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """The command's own flags, after those every task command takes (MODEL TABLE, --images, --cache-dir,
        --n-boot, --min-stratum), so the command line finds them here rather than listing tasks."""

    def run_command(self, args: argparse.Namespace, **scoring: Any) -> Any:
        """The task once on ``args.table`` from the command line, ``scoring`` being the metric collection's
        settings (``n_boot``, ``min_stratum``): the document the command prints."""
        raise NotImplementedError(f"task type {self.type!r} has no command")


def register_task(name: str) -> Callable[[type[EvalTask]], type[EvalTask]]:
    """Class decorator: make the task type ``name`` known to suites."""

    def register(cls: type[EvalTask]) -> type[EvalTask]:
        if name in TASKS:
            raise ValueError(f"task type {name!r} is registered twice")
        cls.type = name
        TASKS[name] = cls()
        return cls

    return register
