"""The case table: typed round trip, real nulls, validation naming the row and field."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from dermkit.core import InputError
from dermkit.data import schema
from dermkit.data.table import Case, cases_to_frame, read_cases, read_manifest, read_table, update_table, write_table

REPO = Path(__file__).resolve().parents[2]


def full_case() -> Case:
    return Case(
        case_id="src:1", image_paths=["/a.png", "/b.png"], source="src", age=54.0, sex="female",
        fitzpatrick=3, monk=5, body_site="back", symptoms=["itch"], duration="one_to_four_weeks",
        history={"itch": True, "smoke": False}, measurements={"diameter_1_mm": 6.0},
        history_text="itchy for weeks", caption="a photo", diagnosis="NEV", diagnosis_id="melanocytic_nevus",
        differential={"melanocytic_nevus": 0.75, "melanoma": 0.25}, concepts=["papule"], patient_id="P1",
        lesion_id="L1", acquisition="clinical", licence="CC BY 4.0", split="train",
        date=datetime(2023, 3, 1, 12, 0), extra={"gradable": True},
    )


def test_round_trip_keeps_types_and_nulls(tmp_path: Path) -> None:
    minimal = Case(case_id="src:2", image_paths=["/c.png"], source="src")
    write_table([full_case(), minimal], tmp_path / "t", manifest={"note": "x"})
    back = read_cases(tmp_path / "t")
    assert back[0] == full_case()
    assert back[1] == minimal
    raw = pq.read_table(tmp_path / "t" / "cases.parquet")
    assert raw.schema.names == list(schema.COLUMNS)
    assert raw.cast(schema.CASE_SCHEMA).schema.equals(schema.CASE_SCHEMA)
    assert raw.column("age").null_count == 1
    assert read_manifest(tmp_path / "t")["note"] == "x"
    assert read_manifest(tmp_path / "t")["cases"] == 2


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"sex": "F"}, "sex"),
        ({"fitzpatrick": 7}, "fitzpatrick"),
        ({"monk": 0}, "monk"),
        ({"age": 130.0}, "age"),
        ({"image_paths": []}, "image_paths"),
        ({"image_paths": [f"/{i}.png" for i in range(7)]}, "image_paths"),
        ({"differential": {"a": 0.5}}, "differential"),
        ({"split": "holdout"}, "split"),
    ],
)
def test_invalid_values_are_located(tmp_path: Path, change: dict, field: str) -> None:
    good = Case(case_id="ok", image_paths=["/x.png"], source="s")
    bad = Case(case_id="bad", image_paths=["/y.png"], source="s")
    for key, value in change.items():
        setattr(bad, key, value)
    with pytest.raises(InputError) as caught:
        write_table([good, bad], tmp_path / "t")
    assert caught.value.row == 2 and caught.value.field == field
    assert not (tmp_path / "t").exists()


def test_duplicate_case_id_is_rejected(tmp_path: Path) -> None:
    cases = [Case(case_id="x", image_paths=["/a"], source="s"), Case(case_id="x", image_paths=["/b"], source="s")]
    with pytest.raises(InputError, match="duplicated case id 'x'") as caught:
        write_table(cases, tmp_path / "t")
    assert caught.value.row == 2


def test_update_rewrites_in_place(tmp_path: Path) -> None:
    write_table([full_case()], tmp_path / "t")
    frame = read_table(tmp_path / "t")
    frame.loc[0, "split"] = "test"
    update_table(frame, tmp_path / "t", split_seed=3)
    assert read_table(tmp_path / "t").loc[0, "split"] == "test"
    assert read_manifest(tmp_path / "t")["split_seed"] == 3


def test_reading_something_else_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no case table here"):
        read_table(tmp_path)
    (tmp_path / "cases.parquet").write_bytes(b"not parquet")
    with pytest.raises(InputError, match="unreadable Parquet"):
        read_table(tmp_path)


def test_frame_columns_follow_schema() -> None:
    assert list(cases_to_frame([full_case()]).columns) == list(schema.COLUMNS)


def test_every_field_is_documented() -> None:
    page = (REPO / "docs" / "case-table.md").read_text()
    for name in schema.COLUMNS:
        assert f"`{name}`" in page, f"docs/case-table.md does not document {name}"
