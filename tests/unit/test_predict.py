"""``dermkit predict``: a ranked differential for good input, exit 2 naming the argument for bad input."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from dermkit.cli import main
from dermkit.models.ddx_net import DdxNet, LabelSpace, MetadataSpec
from dermkit.models.factory import build_backbone
from dermkit.models.families.ddx import DdxModel, save_ddx


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    backbone = build_backbone("test_efficientnet", pretrained=False, image_size=32)
    spec = MetadataSpec.fit([SimpleNamespace(age=50.0, measurements=None, history={"itch": True, "smoke": False},
                                             symptoms=None)])
    space = LabelSpace.build("pad-ufes-20", other=False)
    net = DdxNet(len(space.classes), feature_dim=backbone.dim, trunk=backbone.module, metadata=spec)
    config = {"backbone": backbone.name, "feature_dim": backbone.dim, "preprocess": backbone.preprocess,
              "net": {"pooling": "mean", "hidden": 256, "dropout": 0.3, "field_dropout": 0.2, "n_aux": 0}}
    return save_ddx(DdxModel(net.eval(), space, spec, config), tmp_path_factory.mktemp("predict") / "model")


def test_prints_a_ranked_differential_with_ontology_ids(model_dir, make_image, capsys):
    images = [str(make_image(f"{i}.png")) for i in range(2)]
    code = main(["predict", str(model_dir), *images, "--age", "54", "--sex", "female", "--site", "back",
                 "--fitzpatrick", "III", "--symptom", "itch", "--history", "smoke=no", "--history", "drink=yes",
                 "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    ranked = result["differential"]
    assert [entry["rank"] for entry in ranked] == list(range(1, 7))
    assert sum(entry["probability"] for entry in ranked) == pytest.approx(1, abs=1e-5)
    assert [e["probability"] for e in ranked] == sorted((e["probability"] for e in ranked), reverse=True)
    assert {entry["id"] for entry in ranked} == set(LabelSpace.build("pad-ufes-20", other=False).classes)
    assert result["ignored"] == ["--history drink"]


def test_text_output_names_conditions(model_dir, make_image, capsys):
    assert main(["predict", str(model_dir), str(make_image()), "--top", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].startswith(" 1.") and lines[0].endswith(")")


@pytest.mark.parametrize(("extra", "argument", "hint"), [
    (["--site", "bakc"], "--site", "Back"),
    (["--symptom", "itchh"], "--symptom", "Itch"),
    (["--age", "130"], "--age", "130"),
    (["--fitzpatrick", "VII"], "--fitzpatrick", "VII"),
    (["--sex", "unknown"], "--sex", "female"),
    (["--history", "smoke=maybe"], "--history", "yes or no"),
])
def test_bad_fields_exit_2_naming_the_argument(model_dir, make_image, capsys, extra, argument, hint):
    assert main(["predict", str(model_dir), str(make_image()), *extra]) == 2
    error = capsys.readouterr().err
    assert argument in error and hint in error


def test_bad_images_exit_2_naming_the_file(model_dir, make_image, tmp_path, capsys):
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    assert main(["predict", str(model_dir), str(text)]) == 2
    assert "notes.png" in capsys.readouterr().err

    whole = make_image("whole.png", size=(64, 64)).read_bytes()
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(whole[: len(whole) // 2])
    assert main(["predict", str(model_dir), str(truncated)]) == 2
    assert "truncated.png" in capsys.readouterr().err

    seven = [str(make_image(f"m{i}.png")) for i in range(7)]
    assert main(["predict", str(model_dir), *seven]) == 2
    assert "at most 6" in capsys.readouterr().err


def test_a_directory_that_is_not_a_model_exits_2(tmp_path, make_image, capsys):
    assert main(["predict", str(tmp_path), str(make_image())]) == 2
    assert "ddx_config.json" in capsys.readouterr().err
