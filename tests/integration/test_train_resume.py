"""Exact resume, feature caching and checkpoint atomicity of ``dermkit train clip`` (tiny-clip, CPU)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("open_clip")

from dermkit.core.errors import InputError  # noqa: E402
from dermkit.data.table import Case, write_table  # noqa: E402
from dermkit.train import ClipTrainConfig, train_clip  # noqa: E402
from dermkit.train import checkpoint  # noqa: E402
from dermkit.train.checkpoint import CHECKPOINT, load_checkpoint  # noqa: E402

CAPTIONS = ["a melanoma on the back", "a benign nevus on the arm", "a basal cell carcinoma on the face",
            "seborrhoeic keratosis on the chest"]


def write_pair_table(out: Path, make_image: Callable[..., Path], n_train: int = 16, n_val: int = 4) -> Path:
    """A case table of ``n_train`` + ``n_val`` cases; every third case has no caption (built ones used)."""
    cases = []
    for i in range(n_train + n_val):
        images = [str(make_image(f"img{i}_{k}.png", folder=out.parent / "images")) for k in range(1 + i % 2)]
        cases.append(Case(case_id=f"c{i}", image_paths=images, source="synthetic", diagnosis="melanoma",
                          caption=None if i % 3 == 0 else CAPTIONS[i % 4], split="train" if i < n_train else "val",
                          age=40.0 + i, sex="female" if i % 2 else "male"))
    return write_table(cases, out, manifest={"source": "synthetic", "licence": "CC0"})


def config(table: Path, out: Path, **overrides: object) -> ClipTrainConfig:
    settings: dict[str, object] = dict(model="tiny-clip", data=[str(table)], out=str(out), epochs=2, batch_size=4,
                                       lr=1e-3, warmup=2, export=False, precision="fp32")
    settings.update(overrides)
    return ClipTrainConfig(**settings)  # type: ignore[arg-type]


def weights(run: Path) -> dict[str, torch.Tensor]:
    state = load_checkpoint(run)
    assert state is not None
    return state["model"]


def events(run: Path, kind: str) -> list[dict[str, object]]:
    """The run's logged events of ``kind``; safe on a live run, whose last line may be half written."""
    log = run / "metrics.jsonl"
    records = []
    for line in (log.read_text().splitlines() if log.exists() else []):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return [record for record in records if record["event"] == kind]


@pytest.fixture
def table(tmp_path: Path, make_image: Callable[..., Path]) -> Path:
    return write_pair_table(tmp_path / "table", make_image)


def test_resume_after_stop_mid_epoch_equals_uninterrupted_run(table: Path, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    full = train_clip(config(table, tmp_path / "full"))
    stopped = train_clip(config(table, tmp_path / "split", max_steps=3))  # 4 steps per epoch: stops mid-epoch 0
    assert not stopped["finished"] and stopped["step"] == 3
    resumed = train_clip(config(table, tmp_path / "split", resume=True))
    assert resumed["finished"] and resumed["step"] == full["step"] == 8
    expected, actual = weights(tmp_path / "full"), weights(tmp_path / "split")
    for name, value in expected.items():
        assert torch.equal(value, actual[name]), name
    assert resumed["results"] == full["results"]


@pytest.mark.slow
def test_resume_after_sigkill_equals_uninterrupted_run(table: Path, tmp_path: Path) -> None:
    run = tmp_path / "killed"
    args = ["train", "clip", "--model", "tiny-clip", "--data", str(table), "--out", str(run), "--epochs", "3",
            "--batch-size", "4", "--lr", "1e-3", "--warmup", "2", "--save-every", "1", "--no-export",
            "--precision", "fp32"]  # as config(): the exact comparison needs one precision
    child = subprocess.Popen([sys.executable, "-m", "dermkit.cli", *args],
                             env={**os.environ, "OMP_NUM_THREADS": "1"}, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        # the checkpoint file appears before its log line: wait for both
        while not ((run / CHECKPOINT).exists() and [e for e in events(run, "checkpoint") if e["step"] >= 2]):
            assert child.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait()
    killed_at = load_checkpoint(run)["step"]  # type: ignore[index]
    assert 2 <= killed_at < 12
    train_clip(config(table, run, epochs=3, save_every=1, resume=True))
    train_clip(config(table, tmp_path / "full", epochs=3, save_every=1))
    expected, actual = weights(tmp_path / "full"), weights(run)
    for name, value in expected.items():
        assert torch.equal(value, actual[name]), name


def test_resume_refuses_a_changed_recipe(table: Path, tmp_path: Path) -> None:
    train_clip(config(table, tmp_path / "run", max_steps=1))
    with pytest.raises(InputError, match="lr"):
        train_clip(config(table, tmp_path / "run", max_steps=2, resume=True, lr=5e-4))


def test_frozen_trunk_features_are_cached_reused_and_invalidated(
    table: Path, tmp_path: Path, make_image: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    frozen = dict(lock_image=True, lock_text=True, cache_dir=str(cache), epochs=1)
    first = train_clip(config(table, tmp_path / "a", **frozen))
    assert [e["hit"] for e in events(tmp_path / "a", "feature_cache")] == [False, False]
    assert len(list(cache.glob("*.pt"))) == 2

    def no_recompute(*args: object, **kwargs: object) -> None:
        raise AssertionError("features were recomputed although cached")

    with monkeypatch.context() as patch:
        patch.setattr("dermkit.models.feature_cache.compute_features", no_recompute)
        second = train_clip(config(table, tmp_path / "b", **frozen))
    assert [e["hit"] for e in events(tmp_path / "b", "feature_cache")] == [True, True]
    assert second["results"] == first["results"]

    make_image("img5_0.png", folder=tmp_path / "images", size=(40, 40))  # new content for one case's image
    train_clip(config(table, tmp_path / "c", **frozen))
    assert {e["side"]: e["hit"] for e in events(tmp_path / "c", "feature_cache")} == {"image": False, "text": True}


def test_failed_checkpoint_save_keeps_the_previous_checkpoint(
    table: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "run"
    train_clip(config(table, run, max_steps=1))
    before = (run / CHECKPOINT).read_bytes()

    def broken_save(obj: object, path: Path) -> None:
        Path(path).write_bytes(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        train_clip(config(table, run, max_steps=2, resume=True))
    assert (run / CHECKPOINT).read_bytes() == before
    assert load_checkpoint(run)["step"] == 1  # type: ignore[index]
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["last.pt"]


def test_bf16_accumulation_and_checkpointing_run_and_export_a_loadable_model(table: Path, tmp_path: Path) -> None:
    from dermkit.models import ModelCard, load_model

    run = tmp_path / "run"
    summary = train_clip(config(table, run, epochs=1, precision="bf16", accum=2, grad_checkpointing=True,
                                loss="siglip", export=True))
    assert summary is not None and summary["finished"] and summary["step"] == 2  # 4 batches, 2 per step
    assert {"val_loss", "val_i2t_R@1", "val_t2i_R@10"} <= set(summary["results"])
    exported = load_model(str(run / "model"))
    trained = load_checkpoint(run)["model"]  # type: ignore[index]
    torch.testing.assert_close(exported.model.state_dict()["logit_scale"], trained["logit_scale"])
    card = ModelCard.read(run / "model" / "README.md")
    assert card.training_data == [{"name": "synthetic", "license": "CC0"}]
    assert card.results["validation"]["val_loss"] == summary["results"]["val_loss"]
    capability = torch.backends.cpu.get_cpu_capability()
    assert (summary["precision"], summary["cpu_capability"]) == ("bf16", capability)
    assert (card.precision, card.cpu_capability) == ("bf16", capability)


def test_unlocked_last_blocks_train_while_the_rest_of_the_trunk_stays_frozen(table: Path, tmp_path: Path) -> None:
    from dermkit.models import load_model

    run = tmp_path / "run"
    # open_clip's text groups: embeddings, block 0, block 1 + final norm, projection; unlock the last two
    train_clip(config(table, run, epochs=1, lock_image=True, lock_text=True, unlock_text_layers=2))
    initial, trained = load_model("tiny-clip").model.state_dict(), weights(run)
    assert [e["side"] for e in events(run, "feature_cache")] == ["image"]  # the text side runs whole
    unchanged = {name for name, value in trained.items() if torch.equal(value, initial[name])}
    assert "visual.conv1.weight" in unchanged and "text.transformer.resblocks.0.mlp.c_fc.weight" in unchanged
    assert "text.transformer.resblocks.1.mlp.c_fc.weight" not in unchanged  # the last text layer trained
    assert "visual.proj" not in unchanged and "text.text_projection" not in unchanged
    with pytest.raises(InputError, match="--lock-image"):
        train_clip(config(table, tmp_path / "bad", unlock_image_groups=1))


def test_a_run_already_at_max_steps_does_not_train_further(table: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    train_clip(config(table, run, max_steps=2))
    before = weights(run)
    again = train_clip(config(table, run, max_steps=2, resume=True))
    assert again is not None and again["step"] == 2 and not again["finished"]
    after = weights(run)
    assert all(torch.equal(value, after[name]) for name, value in before.items())
