"""``dermkit eval`` finds its one-task commands in the task registry: a new task file needs no CLI edit."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from typing import Any

import pytest

from dermkit.cli import build_parser, main
from dermkit.evaluate.tasks import TASKS, EvalTask, register_task

NAME, COMMAND = "test-only-echo", "test-only-echo-cmd"


def eval_commands() -> set[str]:
    """The sub-command names of ``dermkit eval`` in a freshly built parser."""
    top = next(action for action in build_parser()._actions if isinstance(action, argparse._SubParsersAction))
    evaluate = top.choices["eval"]
    return set(next(action for action in evaluate._actions if isinstance(action, argparse._SubParsersAction)).choices)


@pytest.fixture
def echo_task() -> Iterator[str]:
    """A task registered only for this test, with a command and one flag of its own."""

    @register_task(NAME)
    class EchoTask(EvalTask):
        command, command_help = COMMAND, "echo the command line (test only)"

        def add_arguments(self, parser: argparse.ArgumentParser) -> None:
            parser.add_argument("--word", default="hello")

        def run_command(self, args: argparse.Namespace, **scoring: Any) -> Any:
            return {"model": args.model, "table": str(args.table), "word": args.word, "images": args.images,
                    **scoring}

    try:
        yield COMMAND
    finally:
        del TASKS[NAME]


def test_a_registered_task_is_an_eval_command(echo_task: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "--help"])
    assert exit_info.value.code == 0
    listed = capsys.readouterr().out
    assert echo_task in listed and "echo the command line (test only)" in listed
    assert echo_task in eval_commands()

    assert main(["eval", echo_task, "m", "t", "--word", "hi", "--n-boot", "5"]) == 0
    assert json.loads(capsys.readouterr().out) == {"model": "m", "table": "t", "word": "hi", "images": "first",
                                                   "n_boot": 5, "min_stratum": 10}


def test_eval_commands_are_the_registered_tasks_and_the_others() -> None:
    assert eval_commands() == {"suite", "features", "classifier", "compare", "zeroshot", "concepts", "probe",
                               "retrieval"}  # binary and classification run in suites only; no test task is left
