"""Two gloo processes under torchrun train the same weights as one process on the same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("open_clip")

from test_train_resume import events, weights, write_pair_table

from dermkit.cli import main
from dermkit.models import load_model


def train_args(table: Path, out: Path, options: list[str]) -> list[str]:
    return ["train", "clip", "--model", "tiny-clip", "--data", str(table), "--out", str(out), "--epochs", "1",
            "--batch-size", "8", "--lr", "1e-3", "--warmup", "1", "--no-export", "--json",
            "--precision", "fp32", *options]  # exact equality needs fp32 whatever auto picks here


def comparable(name: str, value: torch.Tensor) -> torch.Tensor:
    """The parameter without its attention key bias, whose true gradient is zero (softmax ignores a
    shift shared by all keys): Adam turns the round-off left in it into ±lr steps whose sign differs
    between one process and two, so it carries no information about the gradient being right."""
    if name.endswith("attn.in_proj_bias"):
        query, _, values = value.chunk(3)
        return torch.cat([query, values])
    return value


@pytest.mark.slow
@pytest.mark.parametrize("options", [["--loss", "clip"], ["--loss", "siglip", "--lock-image"]])
def test_two_processes_match_one_process(
    options: list[str], tmp_path: Path, make_image: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    torch.set_num_threads(1)
    table = write_pair_table(tmp_path / "table", make_image, n_train=16, n_val=4)
    assert main(train_args(table, tmp_path / "single", options)) == 0
    assert json.loads(capsys.readouterr().out)["step"] == 2

    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    launched = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "dermkit.cli", *train_args(table, tmp_path / "ddp", options)],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert launched.returncode == 0, launched.stderr[-3000:]

    single_steps, ddp_steps = events(tmp_path / "single", "step"), events(tmp_path / "ddp", "step")
    assert len(ddp_steps) == len(single_steps) == 2
    for one, two in zip(single_steps, ddp_steps, strict=True):
        assert two["loss"] == pytest.approx(one["loss"], abs=1e-5)
    expected, actual = weights(tmp_path / "single"), weights(tmp_path / "ddp")
    for name, value in expected.items():
        torch.testing.assert_close(comparable(name, actual[name]), comparable(name, value), atol=1e-5, rtol=0,
                                   msg=name)
    initial = load_model("tiny-clip").model.state_dict()
    assert sum(not torch.equal(initial[name], value) for name, value in expected.items()) > 10  # really trained
    assert events(tmp_path / "ddp", "val")[0]["val_loss"] == pytest.approx(
        events(tmp_path / "single", "val")[0]["val_loss"], abs=1e-5)
