"""The package faces import lazily: asking for one light module must not load a heavy sibling."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"


def loaded_after(statement: str) -> set[str]:
    """The dermkit modules (and yaml) in ``sys.modules`` after running ``statement`` in a fresh interpreter."""
    code = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    env = {**os.environ, "PYTHONPATH": str(SRC), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("statement", ["import dermkit.train.distributed", "from dermkit.train import distributed"])
def test_train_distributed_loads_neither_the_clip_trainer_nor_evaluation(statement: str) -> None:
    modules = loaded_after(statement)
    assert "dermkit.train.distributed" in modules
    assert "dermkit.train.clip" not in modules
    assert not {name for name in modules if name.startswith("dermkit.evaluate")}


def test_train_ddx_does_not_load_the_suite_runner() -> None:
    modules = loaded_after("import dermkit.train.ddx_trainer")
    assert not {name for name in modules if name.startswith("dermkit.evaluate")}
    assert "dermkit.train.clip" not in modules


def test_one_evaluate_module_does_not_load_the_suite() -> None:
    modules = loaded_after("import dermkit.data.predictions")
    assert "dermkit.evaluate.runner" not in modules
    assert "dermkit.evaluate.suite" not in modules
    assert "yaml" not in modules


def test_lazy_faces_still_answer_their_names() -> None:
    modules = loaded_after("from dermkit.train import train_clip\nfrom dermkit.evaluate import run_suite, load_suite")
    assert {"dermkit.train.clip", "dermkit.evaluate.runner", "dermkit.evaluate.suite"} <= modules
