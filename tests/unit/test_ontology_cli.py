"""`dermkit ontology show` and `dermkit ontology tag`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dermkit.cli import main


def test_show_prints_id_path_synonyms_and_children(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ontology", "show", "Seborrhoeic-Keratosis"]) == 0
    out = capsys.readouterr().out
    assert "Seborrheic keratosis [seborrheic_keratosis]: condition, level 4" in out
    assert "path: Neoplasm > Keratinocytic neoplasm > Benign keratosis > Seborrheic keratosis" in out
    assert "seborrhoeic keratosis" in out
    assert "Irritated seborrheic keratosis [irritated_seborrheic_keratosis]" in out


def test_show_json_is_one_document(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ontology", "show", "armpit", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["kind"] == "body site"
    assert record["id"] == "axilla"
    assert [step["id"] for step in record["path"]] == ["upper_extremity", "axilla"]


def test_show_falls_back_to_concepts_and_symptoms(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ontology", "show", "blue-white veil", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["kind"] == "concept"
    assert main(["ontology", "show", "hurt", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == "pain"


def test_show_unknown_name_exits_2_with_suggestions(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ontology", "show", "melanomma"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "unknown term 'melanomma'" in captured.err
    assert "Melanoma" in captured.err


def test_show_reads_a_derm1m_ontology(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "ontology.json"
    path.write_text(json.dumps({"Inflammatory": ["Eczema"], "Eczema": ["Atopic dermatitis", "Nummular eczema"]}))
    assert main(["ontology", "show", "eczema", "--ontology", str(path), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["level"] == 2
    assert [child["id"] for child in record["children"]] == ["atopic_dermatitis", "nummular_eczema"]


def test_show_with_a_missing_ontology_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ontology", "show", "eczema", "--ontology", str(tmp_path / "absent.json")]) == 2
    assert "cannot read ontology" in capsys.readouterr().err


def test_tag_prints_found_and_negated_terms(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ontology", "tag", "Scaly plaque on the elbow, no itching. Skin type 5."]) == 0
    out = capsys.readouterr().out
    assert "concepts: scale, plaque" in out
    assert "body_sites: elbow" in out
    assert "fitzpatrick: 5" in out
    assert "negated: symptoms:itch" in out
    assert "conditions" not in out


def test_tag_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ontology", "tag", "Psoriasis without scale, FST II", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["conditions"] == ["psoriasis"]
    assert document["fitzpatrick"] == [2]
    assert document["negated"] == {"concepts": ["scale"]}
