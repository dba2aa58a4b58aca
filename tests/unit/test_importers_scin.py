"""SCIN importer on hand-written CSVs in the released layout (literal strings, YES flags, enums)."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import pytest

from dermkit.core.errors import InputError
from dermkit.data.aggregate import Grade
from dermkit.data.importers import run_import
from dermkit.data.importers.base import ImportContext
from dermkit.data.importers.scin import NAMES, SCINImporter, split_graders
from dermkit.data.table import Case, read_cases

CASE_COLUMNS = [
    "case_id", "source", "release", "year", "age_group", "sex_at_birth", "fitzpatrick_skin_type",
    "race_ethnicity_asian", "race_ethnicity_white", "textures_raised_or_bumpy", "textures_flat",
    "body_parts_head_or_neck", "body_parts_arm", "body_parts_leg", "body_parts_other",
    "condition_symptoms_itching", "condition_symptoms_increasing_size",
    "condition_symptoms_no_relevant_experience", "other_symptoms_fever",
    "other_symptoms_no_relevant_symptoms", "related_category", "condition_duration",
    "image_1_path", "image_2_path", "image_3_path", "image_1_shot_type", "image_2_shot_type", "image_3_shot_type",
]
LABEL_COLUMNS = [
    "case_id", *(f"dermatologist_gradable_for_skin_condition_{g}" for g in (1, 2, 3)),
    NAMES, "dermatologist_skin_condition_confidence", "weighted_skin_condition_label",
    *(f"dermatologist_gradable_for_fitzpatrick_skin_type_{g}" for g in (1, 2, 3)),
    *(f"dermatologist_fitzpatrick_skin_type_label_{g}" for g in (1, 2, 3)),
    "gradable_for_monk_skin_tone_india", "gradable_for_monk_skin_tone_us",
    "monk_skin_tone_label_india", "monk_skin_tone_label_us",
]
YES_QUALITY = "DEFAULT_YES_IMAGE_QUALITY_SUFFICIENT"
NO_QUALITY = "NO_IMAGE_QUALITY_INSUFFICIENT"

CASES = [
    {  # graders A, C, B of the inverse-rank example, with the confidences that make boundaries visible
        "case_id": "-101", "age_group": "AGE_30_TO_39", "sex_at_birth": "FEMALE", "fitzpatrick_skin_type": "FST2",
        "race_ethnicity_asian": "YES", "textures_raised_or_bumpy": "YES", "body_parts_arm": "YES",
        "body_parts_leg": "YES", "condition_symptoms_itching": "YES", "condition_symptoms_increasing_size": "YES",
        "other_symptoms_fever": "YES", "related_category": "RASH", "condition_duration": "ONE_TO_FOUR_WEEKS",
        "image_1_path": "dataset/images/-101_1.png", "image_2_path": "dataset/images/-101_2.png",
        "image_1_shot_type": "CLOSE_UP", "image_2_shot_type": "AT_DISTANCE",
    },
    {  # every grader said the images were insufficient
        "case_id": "-102", "age_group": "AGE_UNKNOWN", "sex_at_birth": "OTHER_OR_UNSPECIFIED",
        "fitzpatrick_skin_type": "NONE_SELECTED", "condition_symptoms_no_relevant_experience": "YES",
        "condition_duration": "UNKNOWN", "image_1_path": "dataset/images/-102_1.png",
    },
    {  # no label row at all
        "case_id": "-103", "age_group": "AGE_80_OR_ABOVE", "sex_at_birth": "MALE",
        "body_parts_other": "YES", "image_1_path": "dataset/images/-103_1.png",
    },
]
LABELS = [
    {
        "case_id": "-101", **{f"dermatologist_gradable_for_skin_condition_{g}": YES_QUALITY for g in (1, 2, 3)},
        NAMES: "['Eczema', 'Psoriasis', 'Eczema', 'Tinea', 'Psoriasis']",
        "dermatologist_skin_condition_confidence": "[4, 2, 3, 3, 5]",
        "weighted_skin_condition_label": "{'Eczema': 0.44, 'Psoriasis': 0.33, 'Tinea': 0.22}",
        **{f"dermatologist_gradable_for_fitzpatrick_skin_type_{g}": "YES" for g in (1, 2, 3)},
        "dermatologist_fitzpatrick_skin_type_label_1": "FST3", "dermatologist_fitzpatrick_skin_type_label_2": "FST4",
        "dermatologist_fitzpatrick_skin_type_label_3": "FST3",
        "gradable_for_monk_skin_tone_india": "True", "gradable_for_monk_skin_tone_us": "True",
        "monk_skin_tone_label_india": "5.0", "monk_skin_tone_label_us": "4.0",
    },
    {
        "case_id": "-102", "dermatologist_gradable_for_skin_condition_1": NO_QUALITY,
        "dermatologist_gradable_for_skin_condition_2": "DEFAULT_NO_IMAGE_QUALITY_INSUFFICIENT",
        NAMES: "[]", "dermatologist_skin_condition_confidence": "[]",
        "dermatologist_fitzpatrick_skin_type_label_1": "NONE_IDENTIFIED",
    },
]


def write_csv(path: Path, columns: list[str], records: list[dict[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(records)


@pytest.fixture
def scin_dir(tmp_path: Path, make_image: Callable[..., Path]) -> Path:
    """The bucket layout: ``dataset/scin_cases.csv`` with image paths starting ``dataset/images/``."""
    dataset = tmp_path / "dataset"
    for case in CASES:
        for slot in (1, 2, 3):
            if case.get(f"image_{slot}_path"):
                make_image(case[f"image_{slot}_path"], folder=tmp_path)
    write_csv(dataset / "scin_cases.csv", CASE_COLUMNS, CASES)
    write_csv(dataset / "scin_labels.csv", LABEL_COLUMNS, LABELS)
    return dataset


def read(folder: Path, on_error: str = "raise", **options: str) -> tuple[dict[str, Case], ImportContext]:
    context = ImportContext(on_error=on_error)
    cases = {case.case_id: case for case in SCINImporter(options).read(folder, context)}
    return cases, context


def rewrite_label(folder: Path, **changes: str) -> None:
    write_csv(folder / "scin_labels.csv", LABEL_COLUMNS, [{**LABELS[0], **changes}, LABELS[1]])


def test_differential_is_the_inverse_rank_aggregate_of_rebuilt_graders(scin_dir: Path) -> None:
    case = read(scin_dir)[0]["scin:-101"]
    assert case.differential == pytest.approx({"eczema": 4 / 9, "psoriasis": 3 / 9, "tinea": 2 / 9})
    assert case.diagnosis_id == "eczema"
    assert case.diagnosis == "Eczema"
    assert case.extra["weighted_skin_condition_label"] == {"Eczema": 0.44, "Psoriasis": 0.33, "Tinea": 0.22}


def test_graders_split_where_a_name_repeats_confidence_rises_or_three_are_given() -> None:
    assert split_graders(["Eczema", "Psoriasis", "Eczema", "Tinea", "Psoriasis"], [4, 2, 3, 3, 5]) == [
        Grade(["Eczema", "Psoriasis"], [4, 2]), Grade(["Eczema", "Tinea"], [3, 3]), Grade(["Psoriasis"], [5])]
    assert len(split_graders(["Eczema", "eczema"], [3, 3])) == 2
    assert len(split_graders(["A", "B", "C", "D"], [5, 4, 3, 2])) == 2
    # The documented limit: a boundary with falling confidence and new names cannot be seen.
    assert split_graders(["Psoriasis", "Eczema", "Tinea"], [5, 3, 3]) == [
        Grade(["Psoriasis", "Eczema", "Tinea"], [5, 3, 3])]


def test_a_single_gradable_grader_is_never_split(scin_dir: Path) -> None:
    rewrite_label(scin_dir, **{NAMES: "['Psoriasis', 'Eczema']", "dermatologist_skin_condition_confidence": "[2, 4]",
                               "dermatologist_gradable_for_skin_condition_2": "",
                               "dermatologist_gradable_for_skin_condition_3": ""})
    # Split at the rising confidence, the two would weigh 1/2 each; as one grader's answer, 1/3 and 2/3.
    assert read(scin_dir)[0]["scin:-101"].differential == pytest.approx({"eczema": 2 / 3, "psoriasis": 1 / 3})


def test_demographics_sites_symptoms_and_skin_types(scin_dir: Path) -> None:
    case = read(scin_dir)[0]["scin:-101"]
    assert case.age == 34.5 and case.extra["age_group"] == "AGE_30_TO_39"
    assert case.sex == "female"
    assert case.fitzpatrick == 3  # dermatologists FST3, FST4, FST3; the user said FST2
    assert case.extra["self_reported_fitzpatrick"] == 2
    assert case.monk == 4 and case.extra["monk_india"] == "5.0"
    assert case.body_site == "upper_extremity"
    assert case.extra["body_sites"] == ["upper_extremity", "lower_extremity"]
    assert case.symptoms == ["itch", "growth", "fever"]
    assert case.duration == "one to four weeks"
    assert case.extra["textures"] == ["raised_or_bumpy"]
    assert case.extra["race_ethnicity"] == ["asian"]
    assert case.extra["shot_types"] == ["CLOSE_UP", "AT_DISTANCE"]
    assert [Path(p).name for p in case.image_paths] == ["-101_1.png", "-101_2.png"]
    assert all(Path(p).is_absolute() for p in case.image_paths)


def test_monk_pool_option_picks_the_india_graders(scin_dir: Path) -> None:
    assert read(scin_dir, monk_pool="india")[0]["scin:-101"].monk == 5
    with pytest.raises(InputError, match="monk_pool"):
        read(scin_dir, monk_pool="uk")


def test_ungraded_and_unlabelled_cases_have_no_differential(scin_dir: Path) -> None:
    cases = read(scin_dir)[0]
    insufficient, unlabelled = cases["scin:-102"], cases["scin:-103"]
    assert insufficient.differential is None and insufficient.diagnosis_id is None
    assert insufficient.age is None and insufficient.fitzpatrick is None
    assert insufficient.sex is None and insufficient.extra["sex_at_birth"] == "OTHER_OR_UNSPECIFIED"
    assert insufficient.extra["self_reported_fitzpatrick"] is None
    assert insufficient.symptoms == []  # answered "no relevant experience"
    assert insufficient.duration is None
    assert unlabelled.differential is None and unlabelled.fitzpatrick is None
    assert unlabelled.age is None and unlabelled.extra["age_group"] == "AGE_80_OR_ABOVE"
    assert unlabelled.symptoms is None  # not answered
    assert unlabelled.body_site == "other_site"


def test_conditions_given_although_every_grader_said_insufficient_are_not_used(scin_dir: Path) -> None:
    rewrite_label(scin_dir, **{f"dermatologist_gradable_for_skin_condition_{g}": NO_QUALITY for g in (1, 2, 3)})
    assert read(scin_dir)[0]["scin:-101"].differential is None


def test_malformed_literal_names_row_and_field(scin_dir: Path) -> None:
    rewrite_label(scin_dir, **{NAMES: "['Eczema', 'Psoriasis'"})
    with pytest.raises(InputError) as caught:
        read(scin_dir)
    assert caught.value.row == 1 and caught.value.field == NAMES
    assert Path(str(caught.value.file)).name == "scin_labels.csv"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"dermatologist_skin_condition_confidence": "[4, 2, 3]"}, "dermatologist_skin_condition_confidence"),
        ({"dermatologist_skin_condition_confidence": "[4, 2, 3, 3, 9]"}, "dermatologist_skin_condition_confidence"),
        ({"dermatologist_gradable_for_skin_condition_2": "MAYBE"}, "dermatologist_gradable_for_skin_condition_2"),
        ({"dermatologist_fitzpatrick_skin_type_label_1": "FST7"}, "dermatologist_fitzpatrick_skin_type_label_1"),
        ({"weighted_skin_condition_label": "['Eczema']"}, "weighted_skin_condition_label"),
        ({NAMES: "['Eczema', 'Dragon scale', 'Eczema', 'Tinea', 'Psoriasis']"}, NAMES),
    ],
)
def test_bad_label_values_are_rejected_naming_the_field(scin_dir: Path, changes: dict[str, str], field: str) -> None:
    rewrite_label(scin_dir, **changes)
    cases, context = read(scin_dir, on_error="skip")
    assert "scin:-101" not in cases and "scin:-102" in cases
    assert [(p["row"], p["field"]) for p in context.problems] == [(1, field)]


def test_bad_case_values_are_rejected_naming_the_field(scin_dir: Path) -> None:
    records = [{**CASES[0], "age_group": "AGE_30_OR_SO"}, {**CASES[1], "body_parts_arm": "MAYBE"}, CASES[2]]
    write_csv(scin_dir / "scin_cases.csv", CASE_COLUMNS, records)
    cases, context = read(scin_dir, on_error="skip")
    assert list(cases) == ["scin:-103"]
    assert [(p["row"], p["field"]) for p in context.problems] == [(1, "age_group"), (2, "body_parts_arm")]


def test_run_import_writes_a_valid_table(scin_dir: Path, tmp_path: Path) -> None:
    result = run_import("scin", scin_dir, tmp_path / "table")
    cases = {case.case_id: case for case in read_cases(result.out_dir)}
    assert result.cases == 3 and result.problems == []
    assert cases["scin:-101"].acquisition == "clinical"
    assert cases["scin:-101"].licence == "SCIN Data Use License"
    assert cases["scin:-101"].differential == pytest.approx({"eczema": 4 / 9, "psoriasis": 3 / 9, "tinea": 2 / 9})


def test_images_option_finds_images_kept_flat_in_one_folder(scin_dir: Path, tmp_path: Path) -> None:
    flat = tmp_path / "flat"
    (tmp_path / "dataset" / "images").rename(flat)
    case = read(scin_dir, images=str(flat))[0]["scin:-101"]
    assert [Path(p).parent for p in case.image_paths] == [flat.resolve(), flat.resolve()]
