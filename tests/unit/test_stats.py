"""Dataset statistics: hand-counted groupings, ontology levels, missingness, PNG charts, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from dermkit.cli import main
from dermkit.core.errors import InputError
from dermkit.data import schema
from dermkit.data.stats import age_band, format_stats, plot_stats, stats_for_table, table_stats
from dermkit.data.table import Case, cases_to_frame, write_table
from dermkit.ontology import Ontology, load_ontology


@pytest.fixture
def ontology(tmp_path: Path) -> Ontology:
    """A three-level Derm1M-style tree, so level counts are checkable by hand."""
    tree = {"neoplasm": ["melanocytic", "keratinocytic"], "melanocytic": ["nevus", "melanoma"],
            "keratinocytic": ["bcc"], "inflammatory": ["eczema"]}
    path = tmp_path / "ontology.json"
    path.write_text(json.dumps(tree))
    return load_ontology(path)


def cases() -> list[Case]:
    rows = [  # (diagnosis, age, sex, fitzpatrick, monk, site, patient, lesion, split, images)
        ("nevus", 5.0, "female", 1, None, "back", "p1", "l1", "train", 1),
        ("nevus", 17.9, "female", 1, None, "back", "p1", "l2", "train", 2),
        ("melanoma", 18.0, "male", 3, 2, "face", "p2", "l3", "val", 1),
        ("bcc", 45.0, "male", None, None, None, "p3", None, "test", 1),
        ("eczema", 80.0, None, None, None, "arm", None, None, "train", 3),
        (None, None, "other", 6, 2, "back", "p4", "l4", None, 1),
    ]
    return [
        Case(case_id=f"c{i}", image_paths=[f"/img/{i}-{k}.png" for k in range(n)], source="src-a" if i < 4 else "src-b",
             diagnosis_id=dx, age=age, sex=sex, fitzpatrick=fitz, monk=monk, body_site=site, patient_id=patient,
             lesion_id=lesion, split=split, acquisition="clinical")
        for i, (dx, age, sex, fitz, monk, site, patient, lesion, split, n) in enumerate(rows)
    ]


def test_counts_equal_hand_counts(ontology: Ontology) -> None:
    stats = table_stats(cases_to_frame(cases()), name="demo", ontology=ontology)
    assert (stats["table"], stats["cases"], stats["images"], stats["patients"], stats["lesions"]) == ("demo", 6, 9, 4, 4)
    counts = stats["counts"]
    assert counts["diagnosis_id"] == {"nevus": 2, "bcc": 1, "eczema": 1, "melanoma": 1}
    assert counts["condition_level_1"] == {"neoplasm": 4, "inflammatory": 1}
    assert counts["condition_level_2"] == {"melanocytic": 3, "eczema": 1, "keratinocytic": 1}
    assert counts["condition_level_3"] == {"nevus": 2, "bcc": 1, "eczema": 1, "melanoma": 1}
    assert counts["age_band"] == {"0-17": 2, "18-29": 1, "40-49": 1, "80+": 1}
    assert counts["fitzpatrick"] == {"1": 2, "3": 1, "6": 1}
    assert counts["monk"] == {"2": 2}
    assert counts["body_site"] == {"back": 3, "arm": 1, "face": 1}
    assert list(counts["body_site"]) == ["back", "arm", "face"]  # by count, then name
    assert counts["sex"] == {"female": 2, "male": 2, "other": 1}
    assert counts["source"] == {"src-a": 4, "src-b": 2}
    assert counts["acquisition"] == {"clinical": 6}
    assert counts["split"] == {"train": 3, "val": 1, "test": 1}
    assert list(counts["split"]) == ["train", "val", "test"]


def test_missingness_covers_every_column(ontology: Ontology) -> None:
    missing = table_stats(cases_to_frame(cases()), ontology=ontology)["missing"]
    assert list(missing) == list(schema.COLUMNS)
    assert missing["case_id"] == 0.0 and missing["image_paths"] == 0.0
    assert missing["age"] == round(1 / 6, 4)
    assert missing["fitzpatrick"] == round(2 / 6, 4)
    assert missing["monk"] == round(4 / 6, 4)
    assert missing["lesion_id"] == round(2 / 6, 4)
    assert missing["caption"] == 1.0


@pytest.mark.parametrize(("age", "band"), [(0, "0-17"), (17.99, "0-17"), (18, "18-29"), (29.5, "18-29"),
                                           (69, "60-69"), (79.9, "70-79"), (80, "80+"), (104, "80+"), (None, None)])
def test_age_bands(age: float | None, band: str | None) -> None:
    assert age_band(age) == band


def test_unknown_diagnosis_id_is_located(ontology: Ontology) -> None:
    frame = cases_to_frame(cases())
    frame.loc[2, "diagnosis_id"] = "not_a_condition"
    with pytest.raises(InputError, match="not_a_condition") as info:
        table_stats(frame, ontology=ontology)
    assert info.value.row == 3 and info.value.field == "diagnosis_id"


def test_plots_are_valid_pngs(ontology: Ontology, tmp_path: Path) -> None:
    stats = table_stats(cases_to_frame(cases()), name="demo", ontology=ontology)
    written = plot_stats(stats, tmp_path / "plots")
    expected = {f"{g}.png" for g, c in stats["counts"].items() if c} | {"missing.png"}
    assert {p.name for p in written} == expected
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == sorted(expected)  # no temporary left over
    for path in written:
        with Image.open(path) as image:
            assert image.format == "PNG" and image.size[0] >= 300 and image.size[1] >= 100


def test_cli_stats_json_and_plots(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    frame = cases_to_frame(cases())
    frame["diagnosis_id"] = frame["diagnosis_id"].map(
        {"nevus": "melanocytic_nevus", "melanoma": "melanoma", "bcc": "basal_cell_carcinoma"})
    table = write_table(frame, tmp_path / "demo-table")
    assert main(["data", "stats", str(table), "--json", "--plots", str(tmp_path / "plots")]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["table"] == "demo-table" and document["cases"] == 6
    assert document["counts"]["diagnosis_id"] == {"melanocytic_nevus": 2, "basal_cell_carcinoma": 1, "melanoma": 1}
    assert document["counts"] == stats_for_table(table)["counts"]
    assert all(Path(p).exists() for p in document["plots"]) and len(document["plots"]) > 5
    assert main(["data", "stats", str(table)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("demo-table: 6 cases, 9 images, 4 patients, 4 lesions")
    assert text == format_stats(stats_for_table(table)) + "\n"


def test_cli_stats_on_a_directory_that_is_not_a_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "stats", str(tmp_path)]) == 2
    assert "no case table here" in capsys.readouterr().err
