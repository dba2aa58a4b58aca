"""Suite files are validated before anything runs, and every error names the YAML line."""

from __future__ import annotations

from pathlib import Path

import pytest

from dermkit.cli import main
from dermkit.evaluate.suite import SuiteError, load_suite

VALID = """\
name: tiny
options:
  bootstrap: 20
  strata: [sex, fitzpatrick]
  hierarchy_levels: [2]
datasets:
  syn:
    table: table
models:
  - tiny-clip
tasks:
  zs:
    type: zero-shot
  probe:
    type: linear-probe
    regimes: [full, shot:2]
    seeds: [0, 1]
  mel:
    type: binary
    from: zs
    positive: [melanoma]
"""


def _write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "table").mkdir(exist_ok=True)
    (tmp_path / "table" / "cases.parquet").touch()
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    return path


def _line_of(text: str, needle: str) -> int:
    return next(number for number, line in enumerate(text.splitlines(), 1) if needle in line)


def test_a_valid_suite_loads_with_defaults_and_resolved_references(tmp_path: Path) -> None:
    suite = load_suite(_write(tmp_path, VALID))
    assert suite.name == "tiny" and suite.models == ("tiny-clip",)
    assert suite.options.bootstrap == 20 and suite.options.strata == ("sex", "fitzpatrick")
    assert suite.options.level == 0.95, "unset options keep their defaults"
    assert suite.datasets["syn"].table == tmp_path / "table", "paths are relative to the suite's folder"
    assert suite.tasks["mel"].models == ("tiny-clip",) and suite.tasks["mel"].datasets == ("syn",)
    assert suite.tasks["probe"].line == _line_of(VALID, "probe:")


@pytest.mark.parametrize(
    ("old", "new", "needle", "expected"),
    [
        ("    type: zero-shot", "    type: zeroshot", "type: zeroshot", "unknown task type 'zeroshot'"),
        ("  - tiny-clip", "  - tiny-clipp", "tiny-clipp", "unknown model 'tiny-clipp'"),
        ("    type: linear-probe", "    type: linear-probe\n    datasets: [ham]", "datasets: [ham]",
         "unknown dataset 'ham'"),
        ("  bootstrap: 20", "  bootstrap: 20\n  boostrap: 5", "boostrap", "unknown field"),
        ("    seeds: [0, 1]", "    seeds: [0, 1]\n    regime: [full]", "regime: [full]", "did you mean 'regimes'"),
        ("    regimes: [full, shot:2]", "    regimes: [full, shots:2]", "regimes:", "unknown regime 'shots:2'"),
        ("  strata: [sex, fitzpatrick]", "  strata: [sex, skin]", "strata:", "unknown stratum field 'skin'"),
        ("    from: zs", "    from: nothing", "from: nothing", "earlier zero-shot or linear-probe"),
        ("    positive: [melanoma]", "    positive:\n      - melanomma", "melanomma", "unknown condition"),
        ("  bootstrap: 20", "  bootstrap: many", "bootstrap: many", "expected int"),
        ("    table: table", "    table: missing", "syn:", "needs an existing 'table' or an 'import'"),
        ("  zs:\n    type: zero-shot", "  zs:\n    type: zero-shot\n    models: [timm:resnet18]",
         "timm:resnet18", "unknown model 'timm:resnet18'"),
        ("  bootstrap: 20", "  bootstrap: 20\n  bootstrap: 30", "bootstrap: 30", "duplicate key 'bootstrap'"),
    ],
)
def test_errors_name_the_line_of_the_problem(tmp_path: Path, old: str, new: str, needle: str, expected: str) -> None:
    assert old in VALID
    text = VALID.replace(old, new, 1)
    path = _write(tmp_path, text)
    with pytest.raises(SuiteError) as caught:
        load_suite(path)
    message = str(caught.value)
    assert expected in message
    assert caught.value.line == _line_of(text, needle), message
    assert message.startswith(f"{path}, line {caught.value.line}")


def test_text_tasks_refuse_an_image_only_model_by_line(tmp_path: Path) -> None:
    embeddings = tmp_path / "emb.npy"
    embeddings.write_bytes(b"")
    (tmp_path / "emb.parquet").write_bytes(b"")
    text = VALID.replace("  - tiny-clip", "  - tiny-clip\n  - embeddings:emb.npy").replace(
        "    type: zero-shot", "    type: zero-shot\n    models: [tiny-clip, embeddings:emb.npy]")
    with pytest.raises(SuiteError, match="needs a text tower") as caught:
        load_suite(_write(tmp_path, text))
    assert caught.value.line == _line_of(text, "models: [tiny-clip, embeddings")
    # without an explicit list the text task simply skips the image-only model
    suite = load_suite(_write(tmp_path, VALID.replace("  - tiny-clip", "  - tiny-clip\n  - embeddings:emb.npy")))
    assert suite.tasks["zs"].models == ("tiny-clip",)
    assert suite.tasks["probe"].models == ("tiny-clip", "embeddings:emb.npy")


def test_cli_refuses_a_bad_suite_before_running_anything(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = VALID.replace("    type: zero-shot", "    type: zeroshot")
    path = _write(tmp_path, text)
    assert main(["eval", str(path), "--out", str(tmp_path / "run")]) == 2
    assert f"line {_line_of(text, 'zeroshot')}" in capsys.readouterr().err
    assert not (tmp_path / "run").exists(), "nothing may be written for a suite that cannot run"
    assert main(["eval", str(_write(tmp_path, VALID)), "--check"]) == 0
    assert "ok" in capsys.readouterr().out


def test_a_task_type_registered_in_one_file_is_picked_up_by_suites(tmp_path: Path) -> None:
    """A new task type is one registered class: the suite accepts its fields and runs its check."""
    from collections.abc import Mapping
    from typing import Any, ClassVar

    from dermkit.evaluate.tasks import TASKS, EvalTask, register_task

    @register_task("throwaway")
    class ThrowawayTask(EvalTask):
        fields: ClassVar[Mapping[str, Any]] = {"depth": int}
        runs_models = True

        def check(self, check: Any, values: Mapping[str, Any], lines: Mapping[str, int], at: int,
                  earlier: Mapping[str, Any]) -> None:
            if values.get("depth", 1) > 3:
                raise check.fail("depth is at most 3", lines["depth"], "depth")

    try:
        text = VALID + "  deep:\n    type: throwaway\n    depth: 2\n"
        suite = load_suite(_write(tmp_path, text))
        assert suite.tasks["deep"].type == "throwaway" and suite.tasks["deep"].models == ("tiny-clip",)
        with pytest.raises(SuiteError, match="depth is at most 3") as caught:
            load_suite(_write(tmp_path, text.replace("depth: 2", "depth: 9")))
        assert caught.value.line == _line_of(text, "depth: 2")
        with pytest.raises(SuiteError, match="did you mean 'depth'"):
            load_suite(_write(tmp_path, text.replace("depth: 2", "deptth: 2")))
        with pytest.raises(ValueError, match="registered twice"):
            register_task("throwaway")(ThrowawayTask)
    finally:
        del TASKS["throwaway"]
    with pytest.raises(SuiteError, match="unknown task type 'throwaway'"):
        load_suite(_write(tmp_path, text))
