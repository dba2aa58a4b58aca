"""`dermkit train ddx` under torchrun: two gloo processes train the weights of one process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")

from dermkit.cli import main
from dermkit.train.checkpoint import load_checkpoint


def train_args(table: Path, out: Path) -> list[str]:
    # Class weights and smoothing on (the case the global normaliser exists for); dropout off, since
    # each rank draws its own masks; heads only, since batch-norm statistics are per rank.
    return ["train", "ddx", "--data", str(table), "--out", str(out), "--labels", "ham10000", "--no-other",
            "--inputs", "images+metadata", "--backbone", "test_efficientnet", "--no-pretrained",
            "--image-size", "32", "--hidden", "16", "--dropout", "0", "--field-dropout", "0",
            "--class-weights", "effective", "--label-smoothing", "0.1", "--sampling", "balanced",
            "--epochs", "3", "--batch-size", "8", "--lr", "1e-2", "--json",
            "--precision", "fp32"]  # exact equality needs fp32 whatever auto picks here


@pytest.mark.slow
def test_two_processes_match_one_process(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        synthetic_ham_table: Callable[..., Path]) -> None:
    torch.set_num_threads(1)
    table = synthetic_ham_table(tmp_path, val=0.25, test=0.2)
    assert main(train_args(table, tmp_path / "single")) == 0
    capsys.readouterr()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launched = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "dermkit.cli", *train_args(table, tmp_path / "ddp")],
        env=env, capture_output=True, text=True, timeout=180,
    )
    assert launched.returncode == 0, launched.stderr[-3000:]
    one, two = load_checkpoint(tmp_path / "single"), load_checkpoint(tmp_path / "ddp")
    assert one["epoch"] == two["epoch"] == 3
    floating = [name for name, value in one["model"].items() if value.is_floating_point()]
    assert floating
    for name in floating:
        assert torch.allclose(one["model"][name], two["model"][name], atol=1e-5), name
    for key in ("train_loss", "val_loss"):
        assert [h[key] for h in two["history"]] == pytest.approx([h[key] for h in one["history"]], abs=1e-5)
    assert one["history"][-1]["train_loss"] < one["history"][0]["train_loss"]  # it did train
