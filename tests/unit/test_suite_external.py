"""Suites on external test sets: ``split: {all: test}`` on a dataset, ``eval SUITE --split all`` on unsplit tables."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("open_clip")

from dermkit.cli import main
from dermkit.data.importers import run_import
from dermkit.data.synthetic import write_synthetic_ham
from dermkit.data.table import read_table

SUITE = """\
name: external
options: {{bootstrap: 10, cache_dir: cache, workers: 0}}
datasets:
  built:
    import: {{source: ham10000, path: source}}
    split: {{all: test}}
    classes: ham10000
  unsplit:
    table: unsplit
    classes: ham10000
models: [tiny-clip]
tasks:
  zs: {{type: zero-shot, datasets: [{datasets}]}}
"""


@pytest.fixture
def root(tmp_path: Path) -> Path:
    write_synthetic_ham(tmp_path / "source", n_cases=24, size=32)
    run_import("ham10000", tmp_path / "source", tmp_path / "unsplit")  # imported without splits
    return tmp_path


def test_a_dataset_marked_all_test_is_scored_on_every_case(root: Path, capsys) -> None:
    (root / "suite.yaml").write_text(SUITE.format(datasets="built"))
    assert main(["eval", str(root / "suite.yaml"), "--out", str(root / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "'unsplit' has no splits" in err and "--split all" in err  # refused, naming the ways out
    (root / "suite.yaml").write_text(SUITE.format(datasets="built").replace(
        "  unsplit:\n    table: unsplit\n    classes: ham10000\n", ""))
    assert main(["eval", str(root / "suite.yaml"), "--out", str(root / "run"), "--quiet"]) == 0
    results = json.loads((root / "run" / "results.json").read_text())
    assert results["datasets"]["built"]["splits"] == {"test": 24}
    assert set(read_table(root / "run" / "tables" / "built")["split"]) == {"test"}
    (zero_shot,) = [r for r in results["results"] if r["task"] == "zs"]
    assert zero_shot["n"] == 24


def test_split_all_scores_an_unsplit_table_without_changing_it(root: Path) -> None:
    (root / "suite.yaml").write_text(SUITE.format(datasets="unsplit"))
    assert main(["eval", str(root / "suite.yaml"), "--out", str(root / "run"), "--quiet", "--split", "all"]) == 0
    results = json.loads((root / "run" / "results.json").read_text())
    assert results["datasets"]["unsplit"]["splits"] == {"test": 24}
    (zero_shot,) = [r for r in results["results"] if r["task"] == "zs"]
    assert zero_shot["n"] == 24
    assert read_table(root / "unsplit")["split"].isna().all()  # the user's table is left as it is


def test_all_takes_no_other_split_setting(root: Path, capsys) -> None:
    (root / "suite.yaml").write_text(SUITE.format(datasets="built").replace("{all: test}", "{all: test, by: lesion}"))
    assert main(["eval", str(root / "suite.yaml"), "--check"]) == 2
    assert "takes no other split setting" in capsys.readouterr().err
    (root / "suite.yaml").write_text(SUITE.format(datasets="built").replace("{all: test}", "{all: holdout}"))
    assert main(["eval", str(root / "suite.yaml"), "--check"]) == 2
    assert "holdout" in capsys.readouterr().err
