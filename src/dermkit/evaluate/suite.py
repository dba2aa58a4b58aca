"""Evaluation suites: one YAML file naming datasets, models, tasks and options, checked before running.

A suite is validated completely before any model is loaded: an unknown dataset, task type, model,
field or option fails at once with the file and line it is on, instead of after an hour of feature
extraction. The loader is a ``yaml.SafeLoader`` that records where every mapping key and list item
starts. Relative paths are resolved against the suite file's folder (``$VARS`` and ``~`` expanded).
The schema is documented in ``docs/evaluation-suites.md``.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dermkit.core.errors import InputError
from dermkit.core.precision import PRECISIONS
from dermkit.evaluate.metrics.collection import (
    BINARY_METRICS,
    CLASSIFICATION_METRICS,
    DEFAULT_POSITIVE,
    DEFAULT_STRATA,
    DEFAULT_STRATA_METRICS,
    DIFFERENTIAL_METRICS,
    POSITIVE_METRICS,
)
from dermkit.evaluate.strata import STRATIFIABLE

# Metric names a task may list; names of metrics of another positive class are checked when scoring.
TASK_METRICS = (*CLASSIFICATION_METRICS, *DIFFERENTIAL_METRICS,
                *(f"{DEFAULT_POSITIVE}_{name}" for name in POSITIVE_METRICS))


@dataclass
class SuiteError(InputError):
    """A suite that cannot run, located by file and line."""

    line: int | None = None

    def __str__(self) -> str:
        where = [str(self.file)] if self.file is not None else []
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.field is not None:
            where.append(f"field {self.field!r}")
        return f"{', '.join(where)}: {self.message}" if where else self.message


class Located(dict):
    """A YAML mapping that remembers its own line and each key's line (1-based)."""

    line: int = 0
    lines: dict[Any, int]


class LocatedList(list):
    """A YAML sequence that remembers its own line and each item's line (1-based)."""

    line: int = 0
    lines: list[int]


class _LineLoader(yaml.SafeLoader):
    """SafeLoader whose mappings and sequences record the line each key and item starts on."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> Located:
    loader.flatten_mapping(node)
    mapping = Located()
    mapping.line, mapping.lines = node.start_mark.line + 1, {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in mapping:
            raise SuiteError(f"duplicate key {key!r}", line=key_node.start_mark.line + 1)
        mapping[key] = loader.construct_object(value_node, deep=True)
        mapping.lines[key] = key_node.start_mark.line + 1
    return mapping


def _construct_sequence(loader: _LineLoader, node: yaml.SequenceNode) -> LocatedList:
    items = LocatedList(loader.construct_object(item, deep=True) for item in node.value)
    items.line, items.lines = node.start_mark.line + 1, [item.start_mark.line + 1 for item in node.value]
    return items


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


@dataclass(frozen=True)
class Options:
    """Run-wide settings: bootstrap, strata, hierarchy levels, feature extraction."""

    bootstrap: int = 1000
    level: float = 0.95
    seed: int = 0
    strata: tuple[str, ...] = DEFAULT_STRATA
    strata_metrics: tuple[str, ...] = DEFAULT_STRATA_METRICS
    min_stratum: int = 10
    hierarchy_levels: tuple[int, ...] = (2,)
    images: str = "first"
    batch_size: int = 64
    workers: int | None = None
    precision: str = "auto"
    device: str = "cpu"
    cache_dir: Path | None = None


@dataclass(frozen=True)
class Dataset:
    """A case table to evaluate on, and how to build it when it is absent."""

    name: str
    table: Path | None
    source: Mapping[str, Any] | None
    split: Mapping[str, Any] | None
    classes: str | tuple[str, ...] | None
    max_cases: int | None
    line: int


@dataclass(frozen=True)
class Task:
    """One benchmark task with its settings, the models and datasets it runs on."""

    name: str
    type: str
    models: tuple[str, ...]
    datasets: tuple[str, ...]
    settings: Mapping[str, Any]
    line: int


@dataclass(frozen=True)
class Suite:
    """A validated suite: nothing in it can fail for a reason the file could have told."""

    path: Path
    name: str
    options: Options
    datasets: dict[str, Dataset]
    models: tuple[str, ...]
    tasks: dict[str, Task]


# Allowed keys per section, with the type each value must have.
_TOP = {"name": str, "options": dict, "datasets": dict, "models": list, "tasks": dict}
_OPTIONS = {
    "bootstrap": int, "level": float, "seed": int, "strata": list, "strata_metrics": list, "min_stratum": int,
    "hierarchy_levels": list, "images": str, "batch_size": int, "workers": int, "precision": str, "device": str,
    "cache_dir": str,
}
_DATASET = {"table": str, "import": dict, "split": dict, "classes": (str, list), "max_cases": int}
_IMPORT = {"source": str, "path": str, "on_error": str, "options": dict}
_SPLIT = {"by": str, "val": float, "test": float, "seed": int, "temporal": bool, "all": str}
_TASK_COMMON = {"type": str, "models": list, "datasets": list, "metrics": list}


class _Checker:
    """Validation with the file and line of every complaint."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, message: str, line: int | None, field_name: str | None = None) -> SuiteError:
        return SuiteError(message, file=self.path, field=field_name, line=line)

    def mapping(self, value: Any, allowed: Mapping[str, Any], where: str, line: int, required: Sequence[str] = ()) -> Located:
        """``value`` as a mapping with only ``allowed`` keys of the right types and every required key."""
        if not isinstance(value, dict):
            raise self.fail(f"{where} must be a mapping", line)
        for key, item in value.items():
            key_line = value.lines.get(key, line) if isinstance(value, Located) else line
            if key not in allowed:
                close = difflib.get_close_matches(str(key), list(allowed), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else f"; allowed: {', '.join(allowed)}"
                raise self.fail(f"unknown field in {where}{hint}", key_line, str(key))
            self.typed(item, allowed[key], key_line, str(key))
        for key in required:
            if key not in value:
                raise self.fail(f"{where} needs {key!r}", line)
        return value  # type: ignore[return-value]

    def typed(self, value: Any, expected: Any, line: int, name: str) -> None:
        kinds = expected if isinstance(expected, tuple) else (expected,)
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            return
        if isinstance(value, bool) and bool not in kinds:
            raise self.fail("expected " + " or ".join(k.__name__ for k in kinds) + ", got a boolean", line, name)
        if not isinstance(value, kinds):
            raise self.fail("expected " + " or ".join(k.__name__ for k in kinds)
                            + f", got {type(value).__name__}", line, name)

    def typed_items(self, values: Mapping[str, Any], name: str, expected: Any, line: int) -> None:
        """Each item of the list ``values[name]`` (if given) is ``expected``; an error names the item's own line."""
        items = values.get(name, [])
        for item, item_line in zip(items, _item_lines(items, line)):
            self.typed(item, expected, item_line, name)

    def choice(self, value: str, allowed: Sequence[str], line: int, name: str, what: str) -> str:
        if value not in allowed:
            close = difflib.get_close_matches(str(value), list(allowed), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f"; known: {', '.join(map(str, allowed))}"
            raise self.fail(f"unknown {what} {value!r}{hint}", line, name)
        return value

    def path_of(self, text: str) -> Path:
        return resolve_path(text, self.path.parent)


def resolve_path(text: str, base: Path) -> Path:
    """A path from a suite: ``$VARS`` and ``~`` expanded, relative ones taken from the suite's folder."""
    path = Path(os.path.expanduser(os.path.expandvars(text)))
    return path if path.is_absolute() else base / path


def _item_lines(values: list[Any], fallback: int) -> list[int]:
    return values.lines if isinstance(values, LocatedList) else [fallback] * len(values)


def load_suite(path: str | Path) -> Suite:
    """Read and validate a suite file; raise :class:`SuiteError` naming the line of the first problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SuiteError(f"cannot read the suite: {exc.strerror}", file=path) from exc
    try:
        document = yaml.load(text, Loader=_LineLoader)
    except SuiteError as exc:
        raise SuiteError(exc.message, file=path, line=exc.line) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise SuiteError(f"not valid YAML: {getattr(exc, 'problem', exc)}", file=path,
                         line=None if mark is None else mark.line + 1) from None
    check = _Checker(path)
    top = check.mapping(document, _TOP, "the suite", 1, required=("tasks",))
    options = _options(check, top.get("options", {}), top.lines.get("options", 1))
    datasets = _datasets(check, top.get("datasets", {}), top.lines.get("datasets", 1))
    models = _models(check, top.get("models", []), top.lines.get("models", 1))
    tasks = _tasks(check, top["tasks"], top.lines["tasks"], datasets, models)
    return Suite(path, str(top.get("name", path.stem)), options, datasets, models, tasks)


def _options(check: _Checker, raw: Any, line: int) -> Options:
    values = check.mapping(raw, _OPTIONS, "options", line)
    lines = values.lines if isinstance(values, Located) else {}
    out: dict[str, Any] = {}
    for key, value in values.items():
        key_line = lines.get(key, line)
        if key == "strata":
            for item, item_line in zip(value, _item_lines(value, key_line)):
                check.choice(item, STRATIFIABLE, item_line, key, "stratum field")
            out[key] = tuple(value)
        elif key == "strata_metrics":
            for item, item_line in zip(value, _item_lines(value, key_line)):
                check.choice(item, TASK_METRICS + BINARY_METRICS, item_line, key, "metric")
            out[key] = tuple(value)
        elif key == "hierarchy_levels":
            for item, item_line in zip(value, _item_lines(value, key_line)):
                if not isinstance(item, int) or isinstance(item, bool) or item < 1:
                    raise check.fail(f"ontology levels are whole numbers from 1, got {item!r}", item_line, key)
            out[key] = tuple(value)
        elif key == "images":
            out[key] = check.choice(value, ("first", "all"), key_line, key, "image mode")
        elif key == "precision":
            out[key] = check.choice(value, PRECISIONS, key_line, key, "precision")
        elif key == "level" and not 0 < value < 1:
            raise check.fail(f"level must lie in (0, 1), got {value}", key_line, key)
        elif key in ("bootstrap", "batch_size", "min_stratum") and value < 1:
            raise check.fail(f"{key} must be positive, got {value}", key_line, key)
        elif key == "cache_dir":
            out[key] = check.path_of(value)
        else:
            out[key] = value
        out.setdefault(key, value)
    return Options(**out)


def _datasets(check: _Checker, raw: Any, line: int) -> dict[str, Dataset]:
    from dermkit.data.importers import IMPORTERS
    from dermkit.data.schema import SPLITS
    from dermkit.data.splits import GROUP_FIELDS

    if not isinstance(raw, dict):
        raise check.fail("datasets must be a mapping of name -> settings", line)
    out = {}
    for name, settings in raw.items():
        at = raw.lines.get(name, line) if isinstance(raw, Located) else line
        values = check.mapping(settings, _DATASET, f"dataset {name!r}", at)
        lines = values.lines if isinstance(values, Located) else {}
        source = values.get("import")
        if source is not None:
            source_line = lines["import"]
            check.mapping(source, _IMPORT, "import", source_line, required=("source", "path"))
            check.choice(source["source"], sorted(IMPORTERS), source.lines.get("source", source_line), "source",
                         "importer")
            if not check.path_of(source["path"]).exists():
                raise check.fail(f"import path {check.path_of(source['path'])} does not exist",
                                 source.lines.get("path", source_line), "path")
            source = {**source, "path": check.path_of(source["path"])}
        split = values.get("split")
        if split is not None:
            split_line = lines["split"]
            check.mapping(split, _SPLIT, "split", split_line)
            if "by" in split:
                check.choice(split["by"], list(GROUP_FIELDS), split.lines.get("by", split_line), "by", "grouping")
            if "all" in split:  # an external test set: every case in one split, nothing to share out
                check.choice(split["all"], list(SPLITS), split.lines.get("all", split_line), "all", "split")
                if len(split) > 1:
                    raise check.fail("'all' puts every case in one split: it takes no other split setting",
                                     split_line, "split")
            for key in ("val", "test"):
                if key in split and not 0 <= split[key] < 1:
                    raise check.fail(f"{key} must be a fraction in [0, 1)", split.lines.get(key, split_line), key)
        table = check.path_of(values["table"]) if "table" in values else None
        if source is None and (table is None or not has_table(table)):
            raise check.fail(f"dataset {name!r} needs an existing 'table' or an 'import' to build it", at)
        classes = values.get("classes")
        if classes is not None:
            classes = _classes(check, classes, lines["classes"])
        if "max_cases" in values and values["max_cases"] < 2:
            raise check.fail("max_cases must be at least 2", lines["max_cases"], "max_cases")
        out[str(name)] = Dataset(str(name), table, source, split, classes, values.get("max_cases"), at)
    return out


def has_table(path: Path) -> bool:
    """Whether a case table is there: a table directory or its Parquet file."""
    from dermkit.data.table import TABLE_FILE

    return path.is_file() or (path / TABLE_FILE).is_file()


def _classes(check: _Checker, classes: Any, line: int) -> str | tuple[str, ...]:
    from dermkit.ontology import default_ontology

    ontology = default_ontology()
    if isinstance(classes, str):
        return check.choice(classes, sorted(ontology.label_sets), line, "classes", "label set")
    ids = []
    for item, item_line in zip(classes, _item_lines(classes, line)):
        node = ontology.conditions.find(str(item))
        if node is None:
            raise check.fail(f"unknown condition {item!r}", item_line, "classes")
        ids.append(node.id)
    return tuple(ids)


def _models(check: _Checker, raw: Any, line: int) -> tuple[str, ...]:
    if not isinstance(raw, list):
        raise check.fail("models must be a list of model names", line)
    names = []
    for name, item_line in zip(raw, _item_lines(raw, line)):
        if not isinstance(name, str):
            raise check.fail(f"a model is named by a string, got {name!r}", item_line, "models")
        try:
            check_model_name(name, check.path.parent)
        except InputError as exc:
            raise check.fail(exc.message, item_line, "models") from None
        if name in names:
            raise check.fail(f"model {name!r} is listed twice", item_line, "models")
        names.append(name)
    return tuple(names)


def check_model_name(name: str, base: Path) -> None:
    """Refuse a model name that :func:`resolve_model` could not load, without loading anything."""
    from dermkit.models.factory import check_model_name as check_source
    from dermkit.models.names import model_name, parse_model_name

    parsed = parse_model_name(name)
    if parsed.source in ("local-dir", "embeddings"):  # relative to the suite file
        parsed = model_name(parsed.source, str(model_path(name, base)))
    if check_source(parsed) not in ("vision-language", "image-only", "embeddings"):
        raise InputError(f"{name!r} names a classifier backbone or model; a suite takes a vision-language model, "
                         "timm:ARCH or embeddings:PATH.npy")


def is_path_like(name: str) -> bool:
    """A model named by its folder: ``local-dir:PATH`` or a name that is unmistakably a path."""
    from dermkit.models.names import parse_model_name

    return parse_model_name(name).source == "local-dir"


def model_path(name: str, base: Path) -> Path:
    """The file or folder a path-like model name points at, relative names against ``base``."""
    from dermkit.models.names import parse_model_name

    return resolve_path(parse_model_name(name).reference, base)


def _tasks(
    check: _Checker, raw: Any, line: int, datasets: Mapping[str, Dataset], models: Sequence[str]
) -> dict[str, Task]:
    """Each task checked by its registered type (:mod:`dermkit.evaluate.tasks`)."""
    from dermkit.evaluate.tasks import TASKS
    from dermkit.models.names import parse_model_name

    def is_image_only(model: str) -> bool:
        return parse_model_name(model).image_only

    if not isinstance(raw, dict) or not raw:
        raise check.fail("tasks must be a non-empty mapping of name -> settings", line)
    out: dict[str, Task] = {}
    for name, settings in raw.items():
        at = raw.lines.get(name, line) if isinstance(raw, Located) else line
        if not isinstance(settings, dict) or "type" not in settings:
            raise check.fail(f"task {name!r} needs a 'type' ({', '.join(TASKS)})", at)
        lines = settings.lines if isinstance(settings, Located) else {}
        kind = check.choice(settings["type"], list(TASKS), lines.get("type", at), "type", "task type")
        spec = TASKS[kind]
        values = check.mapping(settings, {**_TASK_COMMON, **spec.fields}, f"task {name!r}", at)
        chosen_models = _references(check, values, "models", models, lines, at, "model")
        if spec.needs_text:
            if "models" in values:
                for model, model_line in zip(values["models"], _item_lines(values["models"], at)):
                    if is_image_only(model):
                        raise check.fail(f"{kind} needs a text tower, which {model!r} lacks", model_line, "models")
            chosen_models = tuple(m for m in chosen_models if not is_image_only(m))
        if not spec.takes_models and "models" in values:
            raise check.fail(f"a {kind} task takes its models from its predictions, not 'models'", lines["models"])
        chosen_datasets = _references(check, values, "datasets", list(datasets), lines, at, "dataset")
        if spec.runs_models and not (chosen_models and chosen_datasets):
            raise check.fail(f"task {name!r} has no {'model' if not chosen_models else 'dataset'} to run on", at)
        for metric, metric_line in zip(values.get("metrics", []), _item_lines(values.get("metrics", []), at)):
            check.choice(metric, spec.metrics(), metric_line, "metrics", f"{kind} metric")
        spec.check(check, values, lines, at, out)
        chosen_models, chosen_datasets = spec.select(check, values, lines, at, chosen_models, chosen_datasets, out)
        out[str(name)] = Task(str(name), kind, chosen_models, chosen_datasets, dict(values), at)
    return out


def _references(
    check: _Checker, values: Mapping[str, Any], key: str, known: Sequence[str], lines: Mapping[str, int],
    at: int, what: str,
) -> tuple[str, ...]:
    """The task's list of models or datasets (each must be declared), all declared ones by default."""
    if key not in values:
        return tuple(known)
    items = values[key]
    for item, item_line in zip(items, _item_lines(items, lines.get(key, at))):
        check.choice(item, list(known), item_line, key, what)
    return tuple(items)
