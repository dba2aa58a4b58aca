"""``dermkit index build`` embeds a case table into an index that ``dermkit serve`` loads and searches."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("open_clip")

from fastapi.testclient import TestClient  # noqa: E402

from dermkit.cli import main  # noqa: E402
from dermkit.core.errors import DermkitError  # noqa: E402
from dermkit.data.importers import run_import  # noqa: E402
from dermkit.data.synthetic import write_synthetic_ham  # noqa: E402
from dermkit.data.table import read_table  # noqa: E402
from dermkit.serve import ServeConfig  # noqa: E402
from dermkit.serve.app import create_app  # noqa: E402
from dermkit.serve.engine import Engine  # noqa: E402
from dermkit.serve.index import load  # noqa: E402


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
    assert summary == {"out": str(out), "cases": len(frame), "model": "tiny-clip", "dim": 32}
    assert len(load(out)) == len(frame) and load(out).model == "tiny-clip"

    # a single-image case, so its case embedding is exactly its image's
    single = frame[frame["image_paths"].map(len) == 1].iloc[-1]
    engine = Engine.load(ServeConfig(model="tiny-clip", index=out))
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
        Engine.load(ServeConfig(model="tiny-clip", index=out))
