"""The dermatology-rankings importer and the coverage command on small hand-written releases."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dermkit.cli import main
from dermkit.core.errors import InputError
from dermkit.data.coverage import label_coverage
from dermkit.data.importers import run_import
from dermkit.data.importers.base import ImportContext
from dermkit.data.importers.dermatology_rankings import DermatologyRankingsImporter
from dermkit.data.table import Case, read_cases

# 0 and 1 map by name, 2 by the release's wording in mappings.yaml, 3 and 4 map nowhere.
CONDITIONS = ["Psoriasis", "Eczema", "Burn of skin", "Healthy", "Alopecia neurotica"]


def write_release(folder: Path, cases: Any, conditions: list[str] = CONDITIONS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dermatology_selectors.json").write_text(json.dumps(cases))
    (folder / "dermatology_conditions.txt").write_text("\n".join(conditions) + "\n")
    return folder


def read(folder: Path, on_error: str = "raise") -> tuple[list[Case], ImportContext]:
    context = ImportContext(on_error=on_error)
    return list(DermatologyRankingsImporter().read(folder, context)), context


def test_tied_conditions_share_one_rank(tmp_path: Path) -> None:
    # Reader A: psoriasis first, then eczema and burn tied; reader B: eczema alone.
    cases, _ = read(write_release(tmp_path, [[[[0], [1, 2]], [[1]]]]))
    case = cases[0]
    # psoriasis 1, eczema 1/2 + 1, burn 1/2: sums 1, 1.5, 0.5 of 3.
    assert case.extra["release_differential"] == pytest.approx(
        {"Eczema": 0.5, "Psoriasis": 1 / 3, "Burn of skin": 1 / 6}, abs=1e-12)
    assert case.differential == pytest.approx({"eczema": 0.5, "psoriasis": 1 / 3, "burn": 1 / 6}, abs=1e-12)
    assert (case.diagnosis, case.diagnosis_id) == ("Eczema", "eczema")
    assert case.extra["readers"] == [[["Psoriasis"], ["Eczema", "Burn of skin"]], [["Eczema"]]]
    assert case.case_id == "dermatology-rankings:0"


def test_a_single_reader_and_a_single_group_of_ties(tmp_path: Path) -> None:
    cases, _ = read(write_release(tmp_path, [[[[0]]], [[[1, 0]]]]))
    assert cases[0].differential == {"psoriasis": 1.0}
    assert cases[1].differential == {"eczema": 0.5, "psoriasis": 0.5}
    assert cases[1].diagnosis_id == "eczema"  # a tie at the top is broken by id, as everywhere


def test_empty_rankings_add_nothing_and_a_case_nobody_ranked_has_no_label(tmp_path: Path) -> None:
    cases, _ = read(write_release(tmp_path, [[[], [[1], [0]]], [[], []], []]))
    assert cases[0].differential == pytest.approx({"eczema": 2 / 3, "psoriasis": 1 / 3})
    for case in cases[1:]:
        assert (case.differential, case.diagnosis, case.diagnosis_id) == (None, None, None)
        assert case.extra["release_differential"] is None and case.extra["unmapped"] == {}


def test_unmapped_names_keep_their_weight_as_unknown_or_other_with_the_raw_names(tmp_path: Path) -> None:
    # Two different unmapped names from one reader both count (they are not one condition).
    cases, _ = read(write_release(tmp_path, [[[[3], [4], [0]]], [[[3]]]]))
    first = cases[0]
    assert first.differential == pytest.approx({"unknown_or_other": 1.5 / (11 / 6), "psoriasis": (1 / 3) / (11 / 6)})
    assert first.extra["unmapped"] == pytest.approx({"Healthy": 6 / 11, "Alopecia neurotica": 3 / 11})
    assert sum(first.differential.values()) == pytest.approx(1.0, abs=1e-12)
    assert (cases[1].diagnosis, cases[1].diagnosis_id) == ("Healthy", "unknown_or_other")


def test_names_of_one_condition_count_once_per_reader(tmp_path: Path) -> None:
    # "Burn of skin" and "Burn" are one ontology condition: the reader's better rank counts.
    cases, _ = read(write_release(tmp_path, [[[[2], [3], [0]]]], ["Psoriasis", "Burn", "Burn of skin", "Eczema"]))
    assert cases[0].extra["release_differential"] == pytest.approx(
        {"Burn of skin": 6 / 11, "Eczema": 3 / 11, "Psoriasis": 2 / 11})
    cases, _ = read(write_release(tmp_path, [[[[2], [1]]]], ["Psoriasis", "Burn", "Burn of skin"]))
    assert cases[0].differential == {"burn": 1.0}


@pytest.mark.parametrize(("selectors", "field", "message"), [
    ([[[[0]]], [[[1]], [[0], [7]]]], "case 1, reader 1, rank group 1", "condition index 7 is not one of 0–4"),
    ([[[[0]]], [[[-1]]]], "case 1, reader 0, rank group 0", "condition index -1"),
    ([[[[True]]]], "case 0, reader 0, rank group 0", "condition index True"),
    ([[[[0], []]]], "case 0, reader 0, rank group 1", "non-empty list"),
    ([[[[0], [0]]]], "case 0, reader 0, rank group 1", "condition 0 is ranked twice"),
    ([[[0, 1]]], "case 0, reader 0, rank group 0", "non-empty list of condition indices, got 0"),
    ([[{"a": 1}]], "case 0, reader 0", "expected a list of rank groups"),
    (["x"], "case 0", "expected a list of readers"),
])
def test_bad_cases_name_the_case_reader_and_rank_group(
    tmp_path: Path, selectors: Any, field: str, message: str
) -> None:
    folder = write_release(tmp_path, selectors)
    with pytest.raises(InputError) as caught:
        read(folder)
    assert caught.value.field == field
    assert message in caught.value.message
    assert Path(caught.value.file).name == "dermatology_selectors.json"


def test_skip_drops_a_bad_case_reports_it_and_keeps_the_other_ids(tmp_path: Path) -> None:
    folder = write_release(tmp_path / "release", [[[[0]]], [[[9]]], [[[1]]]])
    result = run_import("dermatology-rankings", folder, tmp_path / "table", on_error="skip", check_images=False)
    assert result.cases == 2
    assert [p["field"] for p in result.problems] == ["case 1, reader 0, rank group 0"]
    cases = read_cases(tmp_path / "table")
    assert [c.case_id for c in cases] == ["dermatology-rankings:0", "dermatology-rankings:2"]
    assert all(c.licence == "Apache-2.0" and c.acquisition == "clinical" for c in cases)
    assert cases[1].extra["readers"] == [[["Eczema"]]]  # extra keeps full precision through Parquet


@pytest.mark.parametrize(("conditions", "row", "message"), [
    (["Psoriasis", "", "Eczema"], 2, "empty condition name"),
    (["Psoriasis", "Eczema", "Psoriasis"], 3, "repeats line 1"),
])
def test_bad_condition_lists_name_the_line(tmp_path: Path, conditions: list[str], row: int, message: str) -> None:
    with pytest.raises(InputError, match=message) as caught:
        read(write_release(tmp_path, [], conditions))
    assert caught.value.row == row and Path(caught.value.file).name == "dermatology_conditions.txt"


def test_unreadable_or_missing_files_are_input_errors(tmp_path: Path) -> None:
    folder = write_release(tmp_path, [])
    (folder / "dermatology_selectors.json").write_text("[[[[0]]]")
    with pytest.raises(InputError, match="not readable JSON"):
        read(folder)
    (folder / "dermatology_selectors.json").write_text('{"cases": []}')
    with pytest.raises(InputError, match="expected a list of cases"):
        read(folder)
    (folder / "dermatology_conditions.txt").unlink()
    with pytest.raises(InputError, match="no dermatology_conditions.txt here"):
        read(folder)


def test_cli_imports_labels_only_and_reports_a_bad_index_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = write_release(tmp_path / "release", [[[[0], [1, 2]]], [[[3]]]])
    command = ["data", "import", "dermatology-rankings", str(folder), "--no-image-check"]
    assert main([*command, "--out", str(tmp_path / "t")]) == 0
    assert [c.diagnosis_id for c in read_cases(tmp_path / "t")] == ["psoriasis", "unknown_or_other"]
    write_release(folder, [[[[0]]], [[[1]], [[5]]]])
    capsys.readouterr()
    assert main([*command, "--out", str(tmp_path / "u")]) == 2
    error = capsys.readouterr().err
    assert "case 1, reader 1, rank group 0" in error and "condition index 5" in error
    assert len(error.strip().splitlines()) == 1 and not (tmp_path / "u").exists()


def test_coverage_of_a_release_and_of_a_names_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Case 0: mapped weight 1 + 1/3 of 11/6 (8/11); case 1: all unmapped (0); case 2: unlabelled.
    folder = write_release(tmp_path, [[[[0], [3], [1]]], [[[4]], [[3]]], [[]]])
    coverage = label_coverage(folder)
    assert (coverage.names, list(coverage.mapped), coverage.source) == (5, CONDITIONS[:3], "dermatology-rankings")
    mass = coverage.mass
    assert (mass.cases, mass.labelled_cases, mass.mentions, mass.mapped_mentions) == (3, 2, 5, 2)
    assert mass.mapped_mass == pytest.approx((8 / 11 + 0) / 2)
    assert (mass.top_mapped, mass.fully_mapped) == (1, 0)
    assert coverage.unmapped == ["Healthy", "Alopecia neurotica"]  # by mass: 3/11 + 1/2, then 1/2

    assert main(["ontology", "coverage", str(folder)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "3/5 condition names map to the ontology (60.0%; code table 'dermatology-rankings', then names)"
    assert "differential mass on mapped names: 36.4% (mean over labelled cases)" in out
    assert out[-3:] == ["unmapped (2, by differential mass summed over cases):", "  Healthy  0.773",
                        "  Alopecia neurotica  0.500"]

    names = folder / "dermatology_conditions.txt"
    assert main(["ontology", "coverage", str(names)]) == 0  # without the table "Burn of skin" does not map
    assert capsys.readouterr().out.splitlines()[0].startswith("2/5 condition names map")
    assert main(["ontology", "coverage", str(names), "--source", "dermatology-rankings", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["mapped"]["Burn of skin"] == "burn" and document["mass"] is None
    assert main(["ontology", "coverage", str(names), "--source", "nope"]) == 2
    assert "no label table 'nope'" in capsys.readouterr().err
