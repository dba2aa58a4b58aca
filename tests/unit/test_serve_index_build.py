"""``dermkit index build`` embeds a case table into an index that ``dermkit serve`` loads and searches."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("open_clip")

from fastapi.testclient import TestClient

from dermkit.cli import main
from dermkit.core.errors import DermkitError
from dermkit.data.importers import run_import
from dermkit.data.synthetic import write_synthetic_ham
from dermkit.data.table import read_table
from dermkit.serve import ServeConfig
from dermkit.serve.app import create_app
from dermkit.serve.engine import Engine
from dermkit.serve.index import load
from dermkit.serve.readiness import Readiness
from dermkit.serve.textbank import BANK_INFO, BANK_TENSORS, TextBank


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ham")
    out = root / "table"
    run_import("ham10000", write_synthetic_ham(root / "raw", n_cases=24), out)
    return out


def test_index_build_then_serve_finds_the_uploaded_case(
    table: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "index"
    assert main(["index", "build", str(table), "--model", "tiny-clip", "--out", str(out),
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    summary = json.loads(capsys.readouterr().out)
    frame = read_table(table)
    assert summary == {"out": str(out), "cases": len(frame), "model": "tiny-clip", "dim": 32,
                       "prompts": summary["prompts"]}
    assert summary["prompts"] > 3000  # the default condition list's bank is stored with the index
    assert len(load(out)) == len(frame) and load(out).model == "tiny-clip"

    # a single-image case, so its case embedding is exactly its image's
    single = frame[frame["image_paths"].map(len) == 1].iloc[-1]
    engine = Engine.load(ServeConfig(model="tiny-clip", index=out, cache_dir=tmp_path / "textbank"))
    with TestClient(create_app(engine)) as client:
        photo = Path(single["image_paths"][0]).read_bytes()
        body = client.post("/v1/predict", files=[("images", ("p.jpg", photo, "image/jpeg"))]).json()
        top = body["similar_cases"][0]
        assert top["case_id"] == single["case_id"]
        assert top["ontology_id"] == single["diagnosis_id"]
        assert client.get(top["thumbnail_url"]).headers["content-type"] == "image/jpeg"


def test_index_of_another_model_is_refused_at_start(table: Path, tmp_path: Path) -> None:
    out = tmp_path / "index"
    assert main(["index", "build", str(table), "--model", "tiny-clip", "--out", str(out),
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    info = json.loads((out / "index.json").read_text())
    (out / "index.json").write_text(json.dumps({**info, "model": "dermlip-lite"}))
    with pytest.raises(DermkitError, match="built with model 'dermlip-lite'"):
        Engine.load(ServeConfig(model="tiny-clip", index=out, cache_dir=tmp_path / "textbank"))


def test_index_of_several_tables_refuses_a_case_in_two(table: Path, tmp_path: Path) -> None:
    from dermkit.core.errors import InputError
    from dermkit.serve.build import build_index

    with pytest.raises(InputError, match="more than one table"):
        build_index("tiny-clip", [table, table], tmp_path / "index", cache_dir=tmp_path / "cache", progress=False)
    assert not (tmp_path / "index").exists()


@pytest.fixture(scope="module")
def built(table: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An index of ``table`` with its prompt bank, built once by the CLI."""
    out = tmp_path_factory.mktemp("built") / "index"
    assert main(["index", "build", str(table), "--model", "tiny-clip", "--out", str(out),
                 "--cache-dir", str(out.parent / "features")]) == 0
    return out


def test_server_loads_the_stored_prompt_bank_without_encoding(
    built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert (built / BANK_TENSORS).exists() and (built / BANK_INFO).exists()
    info = json.loads((built / BANK_INFO).read_text())
    assert info["model"] == "tiny-clip" and len(info["weights"]) == 64

    def no_encoding(*_: object, **__: object) -> None:
        raise AssertionError("the prompt bank was encoded again")

    monkeypatch.setattr(TextBank, "build", no_encoding)
    readiness = Readiness()
    engine = Engine.load(ServeConfig(model="tiny-clip", index=built, cache_dir=tmp_path / "textbank"),
                         readiness=readiness)
    assert readiness.report()["parts"]["prompt_bank"]["source"] == "index"
    assert not (tmp_path / "textbank").exists()  # nothing encoded, nothing cached
    assert engine.bank.classes == tuple(info["class_ids"]) and len(engine.bank.concepts) == len(info["concept_ids"])


def test_stored_bank_for_other_weights_is_refused(built: Path, tmp_path: Path) -> None:
    stale = tmp_path / "index"
    shutil.copytree(built, stale)
    info = json.loads((stale / BANK_INFO).read_text())
    (stale / BANK_INFO).write_text(json.dumps({**info, "weights": "0" * 64}))
    with pytest.raises(DermkitError, match="built for other weights .* rebuild both with: dermkit index build"):
        Engine.load(ServeConfig(model="tiny-clip", index=stale, cache_dir=tmp_path / "textbank"))


def test_stored_bank_for_another_condition_list_is_not_used(built: Path, tmp_path: Path) -> None:
    readiness = Readiness()
    Engine.load(ServeConfig(model="tiny-clip", index=built, classes=("melanoma", "acne"),
                            cache_dir=tmp_path / "textbank"), readiness=readiness)
    assert readiness.report()["parts"]["prompt_bank"]["source"] == "encoded"
    assert len(list((tmp_path / "textbank").iterdir())) == 1


def test_stored_bank_round_trips_exactly(tmp_path: Path) -> None:
    import numpy as np

    from dermkit.models import load_model
    from dermkit.serve.config import condition_ids
    from dermkit.serve.textbank import bank_key, concept_leaves

    tiny = load_model("tiny-clip")
    classes, concepts = condition_ids(["melanoma", "acne"]), concept_leaves()[:3]
    key = bank_key(tiny, classes, concepts)
    bank = TextBank.build(tiny, classes, concepts)
    bank.save(tmp_path, key)
    again = TextBank.load_stored(tmp_path, key)
    assert again is not None and again.classes == bank.classes and again.concepts == bank.concepts
    for acquisition, text in bank.class_text.items():
        np.testing.assert_array_equal(again.class_text[acquisition], text)
    np.testing.assert_array_equal(again.concept_margins, bank.concept_margins)
    assert again.scale == bank.scale
    assert TextBank.load_stored(tmp_path, bank_key(tiny, classes[:1], concepts)) is None  # other prompts
    assert TextBank.load_stored(tmp_path / "absent", key) is None
