"""``dermkit train ddx`` end to end on a tiny synthetic table: cached heads, staged unfreezing, resume."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from dermkit.core.errors import InputError
from dermkit.core.precision import precision_record, resolve_precision
from dermkit.metrics import balanced_accuracy
from dermkit.models import ModelCard, load_model
from dermkit.predict import choose_tta, predict_table
from dermkit.train.checkpoint import load_checkpoint
from dermkit.train.ddx_trainer import DdxTrainConfig, DdxTrainer, train_ddx

TINY = {"labels": "ham10000", "other": False, "backbone": "test_efficientnet", "pretrained": False,
        "image_size": 32, "batch_size": 8, "hidden": 16, "precision": "fp32"}


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory, synthetic_ham_table) -> Path:
    return synthetic_ham_table(tmp_path_factory.mktemp("ddx"), val=0.25, test=0.2)


def test_heads_train_on_cached_features_and_the_export_predicts(table, tmp_path, user_cache_dir):
    summary = train_ddx(DdxTrainConfig(data=[str(table)], out=str(tmp_path / "run"), epochs=3, aux_level=2,
                                       **{**TINY, "precision": "auto"}))
    assert summary is not None and summary["epochs_run"] == 3 and 0 <= summary["best_epoch"] < 3
    assert list((user_cache_dir / "features").glob("image-*.pt"))  # no --cache-dir: the user cache dir
    assert not (table / ".ddx-cache").exists() and not (tmp_path / "run" / "feature-cache").exists()
    model = load_model("ddx", path=summary["model"])
    predictions = predict_table(model, table, ["test"])
    assert len(predictions) > 0 and np.allclose(predictions.probs().sum(axis=1), 1, atol=1e-5)
    assert predictions.classes[0] == "melanoma" and set(predictions.frame["split"]) == {"test"}
    card = ModelCard.read(Path(summary["model"]) / "README.md")  # HAM10000 is CC BY-NC: so are its weights
    assert card.license == "cc-by-nc-4.0" and card.training_data[0]["license"] == "CC BY-NC 4.0"
    # --precision auto is resolved once, by the machine, and recorded with the CPU capability.
    machine = precision_record(resolve_precision("auto"))
    assert {key: summary[key] for key in machine} == machine
    assert (card.precision, card.cpu_capability) == (machine["precision"], machine["cpu_capability"])


def test_staged_unfreezing_trains_the_last_trunk_groups(table, tmp_path):
    config = DdxTrainConfig(data=[str(table)], out=str(tmp_path / "run"), epochs=2, unfreeze_epoch=1,
                            unfreeze_groups=1, inputs="images+metadata", pooling="attention", **TINY)
    trainer = DdxTrainer(config, torch.device("cpu"))
    names = {id(p): name for name, p in trainer.net.named_parameters()}
    groups = trainer.backbone.trainable_groups()
    first = {names[id(p)]: p.detach().clone() for p in groups[0].parameters()}
    last = {names[id(p)]: p.detach().clone() for p in groups[-1].parameters()}
    trainer.run()
    trained = load_checkpoint(tmp_path / "run")["model"]  # the last epoch's weights, not the chosen ones
    assert all(torch.equal(value, trained[name]) for name, value in first.items())
    assert any(not torch.equal(value, trained[name]) for name, value in last.items())


def test_cosine_schedule_warms_up_over_the_first_finetuning_epoch_and_decays_to_zero(table, tmp_path):
    config = DdxTrainConfig(data=[str(table)], out=str(tmp_path / "run"), epochs=4, unfreeze_epoch=1,
                            unfreeze_groups=-1, finetune_lr=1e-3, schedule="cosine", inputs="images", **TINY)
    trainer = DdxTrainer(config, torch.device("cpu"))
    head_rates = [g["lr"] for g in trainer.optimizer.param_groups]
    trainer._set_learning_rates(step=0, steps_per_epoch=5)  # a head epoch: rates untouched
    assert [g["lr"] for g in trainer.optimizer.param_groups] == head_rates
    trainer.epoch = 1
    trainer.optimizer = trainer._optimizer()
    trainer._set_learning_rates(step=0, steps_per_epoch=5)
    assert [g["lr"] for g in trainer.optimizer.param_groups] == pytest.approx([config.lr / 5, 1e-3 / 5])
    trainer._set_learning_rates(step=4, steps_per_epoch=5)  # end of the warm-up epoch: the base rates
    assert [g["lr"] for g in trainer.optimizer.param_groups] == pytest.approx([config.lr, 1e-3])
    trainer.epoch = 3
    trainer._set_learning_rates(step=4, steps_per_epoch=5)  # last step of the last epoch: near zero
    assert all(0 < g["lr"] < 0.05 * g["base_lr"] for g in trainer.optimizer.param_groups)


def test_time_budget_fits_the_finetuning_epochs_after_the_first_one(table, tmp_path):
    config = DdxTrainConfig(data=[str(table)], out=str(tmp_path / "run"), epochs=50, unfreeze_epoch=0,
                            schedule="cosine", inputs="images", time_budget_s=3600, **TINY)
    trainer = DdxTrainer(config, torch.device("cpu"))
    trainer.epoch = 1
    trainer._fit_plan_to_budget(epoch_seconds=1000)  # about 3,600 s left: three more epochs
    assert trainer.planned_epochs == 4
    trainer.planned_epochs = 50
    trainer.epoch = 2  # only the first fine-tuning epoch sets the plan
    trainer._fit_plan_to_budget(epoch_seconds=1000)
    assert trainer.planned_epochs == 50
    summary = DdxTrainer(DdxTrainConfig(**{**config.__dict__, "out": str(tmp_path / "short"), "epochs": 3,
                                           "time_budget_s": 1e6}), torch.device("cpu")).run()
    assert summary is not None and summary["epochs_run"] == summary["planned_epochs"] == 3  # capped by --epochs


def test_no_epoch_is_started_that_the_last_one_says_would_overrun_the_budget(table, tmp_path):
    config = DdxTrainConfig(data=[str(table)], out=str(tmp_path / "run"), epochs=50, inputs="images",
                            time_budget_s=100, **TINY)
    trainer = DdxTrainer(config, torch.device("cpu"))
    trainer.started = time.perf_counter() - 60  # 40 s left
    trainer.history = [{"epoch": 0, "seconds": 30}]
    assert not trainer._out_of_time()
    trainer.history.append({"epoch": 1, "seconds": 50})
    assert trainer._out_of_time()
    spent = train_ddx(DdxTrainConfig(**{**config.__dict__, "out": str(tmp_path / "spent"), "time_budget_s": 1e-9}))
    assert spent is not None and spent["epochs_run"] == 1 and Path(spent["model"]).is_dir()  # a budget spent on caching


@pytest.mark.parametrize("criterion", ["loss", "balanced-accuracy"])
def test_the_checkpoint_kept_is_the_best_epoch_by_the_chosen_validation_criterion(table, tmp_path, criterion):
    summary = train_ddx(DdxTrainConfig(data=[str(table)], out=str(tmp_path / "run"), epochs=6, inputs="images",
                                       lr=3e-2, patience=50, select_on=criterion, **TINY))
    assert summary is not None
    epochs = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
              if '"event": "epoch"' in line]
    assert len(epochs) == 6 and all(0 <= r["val_balanced_accuracy"] <= 1 for r in epochs)
    if criterion == "loss":
        best = min(epochs, key=lambda r: r["val_loss"])
    else:  # the first of the epochs that tie on the best score
        best = max(epochs, key=lambda r: r["val_balanced_accuracy"])
    assert summary["best_epoch"] == best["epoch"]
    assert summary["selection"] == {"criterion": criterion, "epoch": best["epoch"], "val_loss": best["val_loss"],
                                    "val_balanced_accuracy": best["val_balanced_accuracy"]}
    card = ModelCard.read(Path(summary["model"]) / "README.md")
    assert card.results["validation"]["criterion"] == criterion


def test_test_time_views_average_the_mirrored_image_in_every_prediction_path(table, tmp_path):
    from PIL.Image import Transpose

    from dermkit.data.images import open_image
    from dermkit.data.table import frame_to_cases, read_table
    from dermkit.models.families.ddx import load_ddx

    summary = train_ddx(DdxTrainConfig(data=[str(table)], out=str(tmp_path / "run"), epochs=1, unfreeze_epoch=0,
                                       unfreeze_groups=-1, inputs="images", **TINY))
    assert summary is not None
    model, cache = load_ddx(summary["model"]), tmp_path / "cache"
    cases = [c for c in frame_to_cases(read_table(table)) if c.split == "test"]
    images = [[open_image(p) for p in c.image_paths] for c in cases]
    mirrored = [[i.transpose(Transpose.FLIP_LEFT_RIGHT) for i in imgs] for imgs in images]
    with torch.no_grad():  # a sharper output layer: the mirror's effect (~4e-4) stands far above rounding (~1e-7)
        [*_, output] = (m for m in model.net.modules() if isinstance(m, torch.nn.Linear))
        output.weight.mul_(100)
    plain = model.predict_proba(images, cases)
    expected = (plain + model.predict_proba(mirrored, cases)) / 2
    assert np.abs(plain - expected).max() > 1e-4  # the mirror changes the prediction
    assert np.abs(model.predict_proba(images, cases, tta=2) - expected).max() < 1e-6
    table_probs = predict_table(model, table, ["test"], cache_dir=cache, tta=2).probs()
    assert np.abs(table_probs - expected).max() < 1e-6
    assert len(list(cache.glob("image-*.pt"))) == 2  # the plain view's entry and the mirror's
    with pytest.raises(InputError, match="--tta"):
        predict_table(model, table, ["test"], cache_dir=cache, tta=3)
    chosen = choose_tta(model, table, cache_dir=cache)  # on validation: the best score, fewest views on a tie
    scores = chosen["balanced_accuracy"]
    assert list(scores) == [1, 2, 4, 8] and chosen["split"] == "val"
    assert chosen["views"] == min(v for v in scores if scores[v] == max(scores.values()))
    val = predict_table(model, table, ["val"], cache_dir=cache, tta=4)
    assert scores[4] == pytest.approx(balanced_accuracy(val.probs(), val.labels()))


def test_a_trained_ddx_trunk_is_a_backbone_and_its_descendant_loads_without_it(table, tmp_path):
    import shutil

    from dermkit.models.factory import build_backbone
    from dermkit.models.families.ddx import load_ddx

    source = train_ddx(DdxTrainConfig(data=[str(table)], out=str(tmp_path / "source"), epochs=1, unfreeze_epoch=0,
                                      unfreeze_groups=-1, inputs="images", **TINY))
    assert source is not None
    trained = load_ddx(source["model"]).net.trunk.state_dict()
    backbone = build_backbone(f"ddx:{source['model']}")
    assert backbone.name == "test_efficientnet" and backbone.preprocess["size"] == 32
    assert all(torch.equal(value, backbone.module.state_dict()[key]) for key, value in trained.items())
    untrained = build_backbone("test_efficientnet", pretrained=False).module.state_dict()
    assert any(not torch.equal(value, untrained[key]) for key, value in trained.items())
    transfer = train_ddx(DdxTrainConfig(data=[str(table)], out=str(tmp_path / "transfer"), epochs=1, inputs="images",
                                        **{**TINY, "backbone": f"ddx:{source['model']}"}))
    assert transfer is not None
    shutil.rmtree(tmp_path / "source")
    model = load_ddx(transfer["model"])  # rebuilt as its architecture, weights from its own file
    assert model.config["backbone"] == "test_efficientnet"
    assert all(torch.equal(value, model.net.trunk.state_dict()[key]) for key, value in trained.items())
    history_only = train_ddx(DdxTrainConfig(data=[str(table)], out=str(tmp_path / "meta"), epochs=1,
                                            inputs="metadata", **TINY))
    assert history_only is not None
    with pytest.raises(InputError, match="no image trunk"):
        build_backbone(f"ddx:{history_only['model']}")


def test_balanced_decision_is_fitted_on_validation_and_travels_with_the_model(table, tmp_path):
    from dermkit.models.families.ddx import load_ddx

    summary = train_ddx(DdxTrainConfig(data=[str(table)], out=str(tmp_path / "run"), epochs=2, inputs="images",
                                       decision="balanced", **TINY))
    assert summary is not None and summary["decision"]["tau"] in summary["decision"]["balanced_accuracy"]
    model = load_ddx(summary["model"])
    bias = np.asarray(model.config["logit_adjustment"])
    assert bias.shape == (len(model.classes),)
    logits = torch.zeros(1, len(model.classes))
    assert np.allclose(model.probabilities(logits), torch.softmax(torch.from_numpy(bias)[None].float(), 1).numpy())
    plain = dict(model.config)
    del plain["logit_adjustment"]
    model.config = plain
    assert np.allclose(model.probabilities(logits), 1 / len(model.classes))


def test_resume_continues_to_the_same_weights(table, tmp_path, monkeypatch):
    whole = DdxTrainConfig(data=[str(table)], out=str(tmp_path / "whole"), epochs=4, export=False,
                           sampling="balanced", **TINY)
    DdxTrainer(whole, torch.device("cpu")).run()
    cut = DdxTrainConfig(data=[str(table)], out=str(tmp_path / "cut"), epochs=4, export=False,
                         sampling="balanced", cache_dir=str(tmp_path / "whole" / "feature-cache"), **TINY)
    trainer = DdxTrainer(cut, torch.device("cpu"))
    original = trainer._train_epoch
    calls = {"n": 0}

    def crash_on_third() -> float:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original()

    monkeypatch.setattr(trainer, "_train_epoch", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        trainer.run()
    assert load_checkpoint(tmp_path / "cut")["epoch"] == 2
    resumed = DdxTrainConfig(**{**cut.__dict__, "resume": True})
    DdxTrainer(resumed, torch.device("cpu")).run()
    a, b = load_checkpoint(tmp_path / "whole"), load_checkpoint(tmp_path / "cut")
    assert a["epoch"] == b["epoch"] == 4
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_bad_settings_are_named(table, tmp_path):
    with pytest.raises(InputError, match="sampling"):
        train_ddx(DdxTrainConfig(data=[str(table)], out=str(tmp_path / "x"), sampling="oversample", **TINY))
    with pytest.raises(InputError, match="unfreeze"):
        train_ddx(DdxTrainConfig(data=[str(table)], out=str(tmp_path / "x"), inputs="metadata", unfreeze_epoch=1,
                                 **TINY))
    with pytest.raises(InputError, match="augment") as error:
        train_ddx(DdxTrainConfig(data=[str(table)], out=str(tmp_path / "x"), augment="heavy", **TINY))
    assert error.value.field == "augment"
    with pytest.raises(InputError, match="select_on") as error:
        train_ddx(DdxTrainConfig(data=[str(table)], out=str(tmp_path / "x"), select_on="accuracy", **TINY))
    assert error.value.field == "select_on"


def test_cli_trains_a_history_only_model_that_predicts(table, tmp_path, make_image, capsys):
    from dermkit.cli import main

    assert main(["train", "ddx", "--data", str(table), "--out", str(tmp_path / "run"), "--labels", "ham10000",
                 "--no-other", "--inputs", "metadata", "--epochs", "2", "--select-on", "balanced-accuracy",
                 "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["epochs_run"] == 2 and summary["selection"]["criterion"] == "balanced-accuracy"
    assert main(["predict", summary["model"], str(make_image()), "--age", "60", "--site", "back", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["differential"]) == 7


def test_training_eval_classifier_and_predict_share_feature_cache_entries(table, tmp_path, monkeypatch):
    """One cache: ``train ddx --tta auto`` encodes the validation images under every view; scoring
    that split with ``eval classifier`` and ``predict`` afterwards reads those entries, encodes nothing."""
    from dermkit.cli import main

    cache = tmp_path / "cache"
    summary = train_ddx(DdxTrainConfig(data=[str(table)], out=str(tmp_path / "run"), epochs=1, tta="auto",
                                       cache_dir=str(cache), **TINY))
    assert summary is not None
    entries = sorted(cache.glob("image-*.pt"))
    assert len(entries) == 1 + 8  # train + val under the plain view; val under each of the 8 views

    def no_recompute(*args: object, **kwargs: object) -> None:
        raise AssertionError("features were recomputed although training cached them")

    monkeypatch.setattr("dermkit.models.feature_cache.compute_features", no_recompute)
    assert main(["eval", "classifier", summary["model"], str(table), "--split", "val", "--tta", "8",
                 "--cache-dir", str(cache), "--n-boot", "10"]) == 0
    predictions = predict_table(load_model("ddx", path=summary["model"]), table, ["val"], cache_dir=cache, tta=8)
    assert len(predictions) > 0 and sorted(cache.glob("image-*.pt")) == entries


def test_shades_of_gray_is_stored_with_the_model_and_applied_when_it_predicts(table, tmp_path):
    from dermkit.data.images import open_image
    from dermkit.data.table import frame_to_cases, read_table
    from dermkit.models.colour import ShadesOfGray
    from dermkit.models.families.ddx import load_ddx

    with pytest.raises(InputError, match="shades-of-gray"):
        DdxTrainer(DdxTrainConfig(data=[str(table)], out=str(tmp_path / "bad"), shades_of_gray=0, **TINY),
                   torch.device("cpu"))
    summary = train_ddx(DdxTrainConfig(data=[str(table)], out=str(tmp_path / "run"), epochs=1, unfreeze_epoch=0,
                                       unfreeze_groups=-1, inputs="images", shades_of_gray=6.0, **TINY))
    assert summary is not None
    model = load_ddx(summary["model"])
    assert model.config["preprocess"]["shades_of_gray"] == 6.0
    cases = [c for c in frame_to_cases(read_table(table)) if c.split == "test"][:4]
    image = open_image(cases[0].image_paths[0])
    expected = model.eval_transform(image)
    plain_preprocess = {k: v for k, v in model.config["preprocess"].items() if k != "shades_of_gray"}
    from dermkit.models.transforms import eval_transform

    assert np.allclose(expected.numpy(), eval_transform(plain_preprocess)(ShadesOfGray(6.0)(image)).numpy())
    via_table = predict_table(model, table, ["test"], cache_dir=tmp_path / "cache").probs()
    images = [[open_image(p) for p in c.image_paths] for c in frame_to_cases(read_table(table)) if c.split == "test"]
    test_cases = [c for c in frame_to_cases(read_table(table)) if c.split == "test"]
    assert np.abs(via_table - model.predict_proba(images, test_cases)).max() < 1e-5


def test_ema_weights_differ_from_the_plain_ones_and_are_kept_when_they_validate_better(table, tmp_path):
    config = DdxTrainConfig(data=[str(table)], out=str(tmp_path / "run"), epochs=2, unfreeze_epoch=0,
                            unfreeze_groups=-1, inputs="images", weight_average="ema", ema_decay=0.5,
                            select_on="balanced-accuracy", export=False, **TINY)
    trainer = DdxTrainer(config, torch.device("cpu"))
    trainer.run()
    assert trainer.ema is not None
    live = trainer.net.state_dict()
    assert any(not torch.equal(trainer.ema[k], v) for k, v in live.items() if v.is_floating_point())
    for record in trainer.history:  # both were validated, and the chosen one is the better
        assert set(record["ema"]) == {"val_loss", "val_balanced_accuracy"}
        better = record["ema"]["val_balanced_accuracy"] > record["val_balanced_accuracy"]
        assert (record.get("weights") == "ema") == better
    # Force the average to win: its weights (not the live ones) become the kept state.
    forced = DdxTrainer(DdxTrainConfig(**{**config.__dict__, "out": str(tmp_path / "forced"), "epochs": 1}),
                        torch.device("cpu"))

    def averaged_is_better() -> dict[str, float]:
        on_average = forced.ema is not None and all(torch.equal(forced.ema[k], v)
                                                    for k, v in forced.net.state_dict().items())
        return {"val_loss": 1.0, "val_balanced_accuracy": 0.9 if on_average else 0.1}

    forced._validate = averaged_is_better  # type: ignore[method-assign]
    forced.run()
    assert forced.history[-1]["weights"] == "ema" and forced.ema is not None and forced.best_state is not None
    assert all(torch.equal(forced.best_state[k], forced.ema[k]) for k in forced.ema)
    with pytest.raises(InputError, match="weight_average"):
        DdxTrainer(DdxTrainConfig(data=[str(table)], out=str(tmp_path / "bad"), weight_average="swa", **TINY),
                   torch.device("cpu"))
