"""Command-line flags built from a config dataclass, so a training option is written once.

Each field's ``dataclasses.field(metadata=...)`` carries its flag's help and, where needed:
``choices``, ``flag`` (a name other than ``--field-name``), ``metavar``, ``nargs``, ``default``
(the flag's, where the dataclass has none), ``path`` (parsed as a Path, stored as a str) and
``parse`` (flag value -> config value, e.g. minutes -> seconds). A bool field is a switch:
``--name`` when it defaults to False, ``--no-name`` when it defaults to True.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

Config = TypeVar("Config")
_SCALARS = (int, float, str)


def _scalar_and_kind(annotation: Any) -> tuple[type, str]:
    """(scalar type, "bool" | "list" | "scalar") of a field's annotation; None is ignored."""
    if annotation is bool:
        return bool, "bool"
    origin, members = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is list:
        return members[0], "list"
    if origin in (typing.Union, types.UnionType):
        scalars = [m for m in members if m in _SCALARS]
        if scalars:  # str | list[str] is given as one str and turned into the list by ``parse``
            return scalars[0], "scalar"
    if annotation in _SCALARS:
        return annotation, "scalar"
    raise TypeError(f"no flag for a field of type {annotation!r}")


def flag_name(field: dataclasses.Field) -> str:
    """The field's flag as typed on the command line."""
    if "flag" in field.metadata:
        return str(field.metadata["flag"])
    switch_off = field.type in (bool, "bool") and field.default is True
    return "--" + ("no-" if switch_off else "") + field.name.replace("_", "-")


def add_config_arguments(parser: argparse.ArgumentParser, config_class: type) -> None:
    """One flag per field of ``config_class``, each with ``dest`` the field's name."""
    hints = typing.get_type_hints(config_class)
    for field in dataclasses.fields(config_class):
        meta = field.metadata
        scalar, kind = _scalar_and_kind(hints[field.name])
        has_default = field.default is not dataclasses.MISSING or field.default_factory is not dataclasses.MISSING
        default = field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default
        options: dict[str, Any] = {"dest": field.name, "help": meta.get("help")}
        if kind == "bool":
            options.update(action="store_false" if default else "store_true")
        else:
            options["type"] = Path if meta.get("path") else scalar
            if kind == "list":
                options["action"] = "append"
            for key in ("choices", "metavar", "nargs"):
                if key in meta:
                    options[key] = meta[key]
            if "default" in meta:
                options["default"] = meta["default"]
            elif has_default:
                options["default"] = default
            else:
                options["required"] = True
        parser.add_argument(flag_name(field), **options)


def config_from_args(config_class: Callable[..., Config], args: argparse.Namespace) -> Config:
    """The config the parsed flags describe (the inverse of :func:`add_config_arguments`)."""
    values: dict[str, Any] = {}
    for field in dataclasses.fields(config_class):  # type: ignore[arg-type]
        value = getattr(args, field.name)
        if field.metadata.get("path") and value is not None:
            value = [str(v) for v in value] if isinstance(value, list) else str(value)
        if "parse" in field.metadata and value is not None:
            value = field.metadata["parse"](value)
        values[field.name] = value
    return config_class(**values)


class DeferredParser(argparse.ArgumentParser):
    """A sub-command parser whose arguments are added on first use: building the training commands'
    flags imports their config dataclasses (torch), which ``dermkit --help`` and every other
    command must not pay for."""

    def __init__(self, *args: Any, populate: Callable[[argparse.ArgumentParser], None] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._populate = populate

    def populated(self) -> DeferredParser:
        if self._populate is not None:
            populate, self._populate = self._populate, None
            populate(self)
        return self

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        return super(DeferredParser, self.populated()).parse_known_args(args, namespace)

    def format_help(self) -> str:
        return super(DeferredParser, self.populated()).format_help()

    def format_usage(self) -> str:
        return super(DeferredParser, self.populated()).format_usage()
