"""The training commands' flags are their config dataclasses' fields: each has one, and each round-trips."""

from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import Any

import pytest

from dermkit.cli import build_parser, main
from dermkit.cli.config_args import add_config_arguments, config_from_args, flag_name
from dermkit.train.clip import ClipTrainConfig
from dermkit.train.ddx_trainer import DdxTrainConfig

REQUIRED = {DdxTrainConfig: ["--data", "t", "--out", "o"], ClipTrainConfig: ["--data", "t", "--out", "o"]}
# Fields whose flag value is converted on the way into the config: (flag arguments, config value).
CONVERTED: dict[str, tuple[list[str], Any]] = {
    "labels": (["melanoma, basal_cell_carcinoma"], ["melanoma", "basal_cell_carcinoma"]),
    "time_budget_s": (["1.5"], 90.0),
    "data": (["a/", "--data", "b"], ["a", "b"]),  # Path-parsed, stored as str
}


def _parser(config_class: type) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, config_class)
    return parser


def _non_default(field: dataclasses.Field, annotation: Any, action: argparse.Action) -> tuple[list[str], Any]:
    """Flag arguments that set ``field`` to a value other than its default, and that value."""
    if field.name in CONVERTED:
        return CONVERTED[field.name]
    default = field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default
    if annotation is bool:
        return [], not default
    if action.choices:
        choice = next(c for c in action.choices if c != default)
        return [str(choice)], choice
    if typing.get_origin(annotation) is list:
        return ["x1", flag_name(field), "x2"], ["x1", "x2"]
    scalar = next(t for t in (int, float, str) if t is annotation or t in typing.get_args(annotation))
    value = {int: 7 if default != 7 else 8, float: 0.375 if default != 0.375 else 0.5,
             str: "some-value"}[scalar]
    return [str(value)], value


@pytest.mark.parametrize("config_class", [DdxTrainConfig, ClipTrainConfig])
def test_every_field_has_a_flag(config_class: type) -> None:
    dests = {action.dest for action in _parser(config_class)._actions}
    missing = [f.name for f in dataclasses.fields(config_class) if f.name not in dests]
    assert not missing, f"fields without a flag: {missing}"
    assert all(f.metadata.get("help") for f in dataclasses.fields(config_class)), "every flag has help"


@pytest.mark.parametrize("config_class", [DdxTrainConfig, ClipTrainConfig])
def test_flags_round_trip_a_non_default_value_of_every_field(config_class: type) -> None:
    parser, hints = _parser(config_class), typing.get_type_hints(config_class)
    actions = {action.dest: action for action in parser._actions}
    for field in dataclasses.fields(config_class):
        values, expected = _non_default(field, hints[field.name], actions[field.name])
        required = ["--out", "o"] if field.name == "data" else REQUIRED[config_class]
        config = config_from_args(config_class, parser.parse_args([*required, flag_name(field), *values]))
        assert getattr(config, field.name) == expected, field.name


def test_defaults_of_the_flags_are_the_configs() -> None:
    args = _parser(DdxTrainConfig).parse_args(["--data", "t", "--out", "o"])
    assert config_from_args(DdxTrainConfig, args) == DdxTrainConfig(data=["t"], out="o")
    args = _parser(ClipTrainConfig).parse_args(["--data", "t", "--out", "o"])
    assert config_from_args(ClipTrainConfig, args) == ClipTrainConfig(model="dermlip-lite", data=["t"], out="o")


def test_help_does_not_build_the_training_flags(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "ddx", "--help"])
    assert "--aux-weight" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["--json", "models", "list"], ["models", "list", "--json"]])
def test_json_before_or_after_the_command(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    import json

    assert main(argv) == 0
    assert "tiny-clip" in json.loads(capsys.readouterr().out)


def test_text_without_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "list"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("or a directory path")
