"""RNG states survive a save/load round trip; unreadable checkpoints are reported, not crashed on."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from dermkit.core.errors import InputError
from dermkit.train.checkpoint import CHECKPOINT, all_rng_states, load_checkpoint, restore_rng, save_checkpoint

CPU = torch.device("cpu")


def draws() -> tuple[float, float, float]:
    return random.random(), float(np.random.rand()), float(torch.rand(()))


def test_rng_states_round_trip_through_a_checkpoint(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, {"rng": all_rng_states(CPU), "step": 7})
    expected = draws()
    draws()
    state = load_checkpoint(tmp_path)
    assert state is not None and state["step"] == 7
    restore_rng(state["rng"], CPU)
    assert draws() == expected


def test_missing_and_corrupt_checkpoints(tmp_path: Path) -> None:
    assert load_checkpoint(tmp_path) is None
    (tmp_path / CHECKPOINT).parent.mkdir()
    (tmp_path / CHECKPOINT).write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="unreadable checkpoint"):
        load_checkpoint(tmp_path)


def test_resuming_on_another_process_count_is_refused() -> None:
    with pytest.raises(InputError, match="2 processes"):
        restore_rng(all_rng_states(CPU) * 2, CPU)


def test_a_checkpoint_of_another_recipe_is_refused_by_name(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, {"config": {"lr": 0.1, "epochs": 2}, "step": 3})
    assert load_checkpoint(tmp_path, recipe={"lr": 0.1, "epochs": 2})["step"] == 3
    with pytest.raises(InputError, match=r"differ from the checkpoint's: \['lr'\]"):
        load_checkpoint(tmp_path, recipe={"lr": 0.2, "epochs": 2})
