"""``dermkit serve --ddx-model DIR`` with a model trained by ``train ddx`` (images + history) on a
small synthetic table: the page in Debian's Chromium and the API give exactly ``dermkit predict``'s
differential, the history form has only the model's fields, and bad fields are refused by name.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("open_clip")

from fastapi.testclient import TestClient

from conftest import serve_in_thread  # tests/ is on sys.path under pytest
from dermkit.data.table import frame_to_cases, read_table
from dermkit.models.families.ddx import load_ddx
from dermkit.models.transforms import TTA_VIEW_COUNTS
from dermkit.predict import parse_fields, predict_case
from dermkit.serve.app import create_app
from dermkit.serve.build import build_index
from dermkit.serve.config import ServeConfig
from dermkit.serve.engine import Engine
from dermkit.train.ddx_trainer import DdxTrainConfig, train_ddx

SRC = Path(__file__).resolve().parents[2] / "src"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
TINY = {"labels": "ham10000", "other": True, "backbone": "test_efficientnet", "pretrained": False,
        "image_size": 32, "batch_size": 8, "hidden": 16, "epochs": 2}
HISTORY = {"age": 45, "sex": "male", "site": "back", "fitzpatrick": 3}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, synthetic_ham_table) -> dict[str, Any]:
    """A model of `train ddx --inputs images+metadata --tta auto`, a similar-case index, two photos."""
    root = tmp_path_factory.mktemp("serve-ddx")
    table = synthetic_ham_table(root, val=0.25, test=0.2, size=48)
    summary = train_ddx(DdxTrainConfig(data=[str(table)], out=str(root / "run"), inputs="images+metadata",
                                       tta="auto", **TINY))
    assert summary is not None
    build_index("tiny-clip", [table], root / "index", cache_dir=root / "features", progress=False)
    cases = [c for c in frame_to_cases(read_table(table)) if c.split == "test"]
    return {"model": Path(summary["model"]), "summary": summary, "index": root / "index",
            "images": [cases[0].image_paths[0], cases[1].image_paths[0]], "textbank": root / "textbank"}


@pytest.fixture(scope="module")
def engine(trained: dict[str, Any]) -> Engine:
    return Engine.load(ServeConfig(model="tiny-clip", ddx_model=str(trained["model"]), index=trained["index"],
                                   cache_dir=trained["textbank"], precision="fp32"))


def cli_predict(model: Path, images: list[str]) -> dict[str, Any]:
    """`dermkit predict ... --json` in a fresh interpreter: what a user runs."""
    args = [f"--{name}={value}" for name, value in HISTORY.items()]
    out = subprocess.run([sys.executable, "-m", "dermkit.cli", "predict", str(model), *images, *args, "--json"],
                         capture_output=True, text=True, check=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(SRC), "HF_HUB_OFFLINE": "1"})
    return json.loads(out.stdout)


def same_differential(served: list[dict[str, Any]], cli: list[dict[str, Any]]) -> None:
    assert [row["ontology_id"] for row in served] == [row["id"] for row in cli]
    np.testing.assert_allclose([row["probability"] for row in served], [row["probability"] for row in cli],
                               rtol=0, atol=1e-6)


def test_train_auto_stores_the_validated_view_count_and_predict_uses_it(trained: dict[str, Any]) -> None:
    config = json.loads((trained["model"] / "ddx_config.json").read_text())
    assert config["tta"]["chosen"] == "validation" and config["tta"]["split"] == "val"
    assert config["tta"]["views"] in TTA_VIEW_COUNTS == tuple(int(n) for n in config["tta"]["balanced_accuracy"])
    assert trained["summary"]["tta"]["views"] == config["tta"]["views"] == load_ddx(trained["model"]).tta
    result = predict_case(trained["model"], trained["images"])
    assert result["tta"] == config["tta"]["views"]


def test_api_equals_dermkit_predict_and_reports_ignored_fields(engine: Engine, trained: dict[str, Any]) -> None:
    cli = cli_predict(trained["model"], trained["images"])
    files = [("images", (Path(p).name, Path(p).read_bytes(), "image/jpeg")) for p in trained["images"]]
    with TestClient(create_app(engine)) as client:
        models = client.get("/v1/models").json()
        assert models["history_fields"]["fields"] == ["age", "sex", "fitzpatrick", "site"]
        assert models["test_time_views"] == cli["tta"]
        assert models["classes"][-1] == {"id": "other", "name": "Other condition"}
        body = client.post("/v1/predict", files=files,
                           data={**{k: str(v) for k, v in HISTORY.items()}, "duration": "two weeks",
                                 "history": ["itch=yes"]})
        assert body.status_code == 200, body.text
        result = body.json()
    same_differential(result["differential"], cli["differential"])
    assert len(result["differential"]) == 8 and "other" in [row["ontology_id"] for row in result["differential"]]
    assert result["ignored"] == ["duration", "history: itch"]  # the model has no yes/no flags
    melanoma = next(row for row in result["differential"] if row["ontology_id"] == "melanoma")
    assert [node["id"] for node in melanoma["path"]] == ["neoplasm", "melanocytic_neoplasm", "melanoma"]
    assert result["similar_cases"] and result["differential_model"]["id"] == trained["model"].parent.name


@pytest.mark.parametrize(("data", "field"), [
    ({"age": "old"}, "age"), ({"age": "125"}, "age"), ({"age": "-3"}, "age"), ({"fitzpatrick": "9"}, "fitzpatrick"),
    ({"sex": "unknown"}, "sex"), ({"site": "forarm"}, "site"), ({"history": ["itch=maybe"]}, "history[0]"),
    ({"history": ["itch"]}, "history[0]"), ({"measurements": ["diameter_1_mm=wide"]}, "measurements[0]"),
])
def test_bad_history_fields_are_refused_naming_the_field(engine: Engine, trained: dict[str, Any],
                                                         data: dict[str, Any], field: str) -> None:
    photo = Path(trained["images"][0])
    with TestClient(create_app(engine)) as client:
        response = client.post("/v1/predict", files=[("images", (photo.name, photo.read_bytes(), "image/jpeg"))],
                               data=data)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field


@pytest.fixture
def server(engine: Engine) -> Iterator[str]:
    with serve_in_thread(create_app(engine)) as url:
        yield url


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is absent (apt-get install -y chromium)")
def test_page_fills_the_models_history_form_and_shows_dermkit_predicts_differential(
        server: str, trained: dict[str, Any]) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    cli = cli_predict(trained["model"], trained["images"])
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page()
            page.goto(server + "/")
            page.wait_for_selector("form[data-fields]")
            shown = page.eval_on_selector_all("[data-field]", "nodes => nodes.filter(n => !n.hidden)"
                                              ".map(n => n.dataset.field)")
            assert shown == ["age", "sex", "fitzpatrick", "site"]  # no duration, symptoms, questions
            page.set_input_files("#images", trained["images"])
            page.fill('input[name="age"]', str(HISTORY["age"]))
            page.select_option('select[name="sex"]', HISTORY["sex"])
            page.select_option('select[name="fitzpatrick"]', str(HISTORY["fitzpatrick"]))
            page.fill('input[name="site"]', HISTORY["site"])
            with page.expect_response("**/v1/predict") as answer:
                page.click("#submit")
            page.wait_for_selector("#results:not([hidden])", timeout=20_000)
            served = answer.value.json()
            labels = page.eval_on_selector_all("#differential .bar-label span:first-child",
                                               "nodes => nodes.map(n => n.textContent)")
            paths = page.eval_on_selector_all("#differential .path", "nodes => nodes.map(n => n.textContent)")
            similar = page.locator("#similar li").count()
        finally:
            browser.close()
    assert served["images"] == 2 and served["history"]["site"] == "back" and served["ignored"] == []
    same_differential(served["differential"], cli["differential"])
    assert labels == [row["name"] for row in cli["differential"]]
    assert "Neoplasm › Melanocytic neoplasm › Melanoma" in paths
    assert similar == 8


def test_yes_no_history_answers_reach_the_model_as_in_dermkit_predict(tmp_path: Path, trained: dict[str, Any],
                                                                      engine: Engine) -> None:
    """A model with history flags (itch, smoke): the form offers them, answers change the differential
    exactly as ``--symptom``/``--history`` do, and an answer the model was not trained on is ignored."""
    from types import SimpleNamespace

    from dermkit.models.ddx_net import DdxNet, LabelSpace, MetadataSpec
    from dermkit.models.factory import build_backbone
    from dermkit.models.families.ddx import DdxModel, save_ddx
    from dermkit.serve.ddx_differential import DdxDifferential

    backbone = build_backbone("test_efficientnet", pretrained=False, image_size=32)
    spec = MetadataSpec.fit([SimpleNamespace(age=50.0, measurements={"diameter_1_mm": 6.0}, symptoms=None,
                                             history={"itch": True, "smoke": False})])
    space = LabelSpace.build("pad-ufes-20", other=True)
    net = DdxNet(len(space.classes), feature_dim=backbone.dim, trunk=backbone.module, metadata=spec, hidden=16,
                 dropout=0.0, field_dropout=0.0)
    config = {"backbone": backbone.name, "feature_dim": backbone.dim, "preprocess": backbone.preprocess,
              "net": {"pooling": "mean", "hidden": 16, "dropout": 0.0, "field_dropout": 0.0, "n_aux": 0}}
    model_dir = save_ddx(DdxModel(net.eval(), space, spec, config), tmp_path / "flags")
    served = Engine(engine.vlm, engine.bank, DdxDifferential.load(model_dir), None, engine.config)
    photos = trained["images"]
    files = [("images", (Path(p).name, Path(p).read_bytes(), "image/jpeg")) for p in photos]
    with TestClient(create_app(served)) as client:
        fields = client.get("/v1/models").json()["history_fields"]
        assert fields["fields"] == ["age", "sex", "fitzpatrick", "site", "history", "measurements"]
        assert fields["flags"] == [{"id": "itch", "name": "Itch"}, {"id": "smoke", "name": "smoke"}]
        assert fields["measurements"] == ["diameter_1_mm"]

        def post(**data: Any) -> dict[str, Any]:
            response = client.post("/v1/predict", files=files, data={"age": "60", **data})
            assert response.status_code == 200, response.text
            return response.json()

        answered = post(symptoms=["itchy"], history=["smoke=no", "drink=yes"], measurements=["diameter_1_mm=9"])
        plain = post()
    assert answered["ignored"] == ["history: drink"]
    assert answered["history"]["history"] == {"smoke": False, "drink": True}
    cli = predict_case(model_dir, photos, parse_fields(age=60, symptoms=["itch"], history={"smoke": "no"},
                                                       measurements={"diameter_1_mm": "9"}))
    assert cli["ignored"] == []
    same_differential(answered["differential"], cli["differential"])
    assert [r["probability"] for r in plain["differential"]] != [r["probability"] for r in answered["differential"]]
