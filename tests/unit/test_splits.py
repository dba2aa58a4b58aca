"""Leak-free stratified splits: groups stay whole, proportions hold per class, seeds repeat."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dermkit.cli import main
from dermkit.core.errors import InputError
from dermkit.data.splits import assign_splits, format_split_counts, group_ids, split_counts, stratified_sample
from dermkit.data.table import Case, cases_to_frame, read_manifest, read_table, write_table

CLASSES = ["melanocytic_nevus", "basal_cell_carcinoma", "squamous_cell_carcinoma", None]


def synthetic_cases(patients: int = 300, seed: int = 1) -> list[Case]:
    """Patients with 1–3 lesions; a rare class (~3 %) and some unlabelled cases; dated by patient."""
    rng = np.random.default_rng(seed)
    start = datetime(2020, 1, 1)
    cases = []
    for p in range(patients):
        for j in range(int(rng.integers(1, 4))):
            label = rng.choice(len(CLASSES), p=[0.6, 0.3, 0.04, 0.06])
            cases.append(Case(
                case_id=f"c{len(cases)}", image_paths=["/img.png"], source="synthetic-test",
                patient_id=f"p{p}", lesion_id=f"p{p}-l{j}", diagnosis_id=CLASSES[label],
                date=start + timedelta(days=int(rng.integers(0, 1000))),
            ))
    return cases


@pytest.fixture
def frame() -> pd.DataFrame:
    return cases_to_frame(synthetic_cases())


def test_no_patient_or_lesion_in_two_splits(frame: pd.DataFrame) -> None:
    frame["split"] = assign_splits(frame, by="patient", seed=3)
    assert frame.groupby("patient_id")["split"].nunique().max() == 1
    assert frame.groupby("lesion_id")["split"].nunique().max() == 1
    assert set(frame["split"]) == {"train", "val", "test"}


def test_proportions_hold_for_every_class_including_rare(frame: pd.DataFrame) -> None:
    frame["split"] = assign_splits(frame, val=0.15, test=0.15, seed=0)
    labels = frame["diagnosis_id"].fillna("(unlabelled)")
    for label, part in frame.groupby(labels):
        total = len(part)
        for split, share in (("train", 0.7), ("val", 0.15), ("test", 0.15)):
            got = int((part["split"] == split).sum())
            # Whole patients move, so allow a patient's worth of cases (≤ 3) or 3 % of the class.
            assert abs(got - share * total) <= max(3, 0.03 * total), (label, split, got, total)
    rare = frame[frame["diagnosis_id"] == "squamous_cell_carcinoma"]
    assert len(rare) < 40 and set(rare["split"]) == {"train", "val", "test"}


def test_same_seed_same_split_other_seed_differs(frame: pd.DataFrame) -> None:
    first = assign_splits(frame, seed=7)
    assert first.equals(assign_splits(frame, seed=7))
    assert not first.equals(assign_splits(frame, seed=8))


def test_null_patient_falls_back_to_lesion_then_case() -> None:
    frame = cases_to_frame([
        Case(case_id="a", image_paths=["/a.png"], source="s", patient_id="p1", lesion_id="L1"),
        Case(case_id="b", image_paths=["/b.png"], source="s", patient_id=None, lesion_id="L1"),
        Case(case_id="c", image_paths=["/c.png"], source="s", patient_id=None, lesion_id="L2"),
        Case(case_id="d", image_paths=["/d.png"], source="s", patient_id=None, lesion_id="L2"),
        Case(case_id="e", image_paths=["/e.png"], source="s"),
        Case(case_id="f", image_paths=["/f.png"], source="s"),
    ])
    groups = group_ids(frame, "patient")
    assert groups[0] == groups[1]  # linked through lesion L1 although b has no patient id
    assert groups[2] == groups[3] != groups[0]
    assert len({groups[4], groups[5], groups[0], groups[2]}) == 4
    assert len(set(group_ids(frame, "case"))) == 6


def test_lesion_grouping_ignores_patients(frame: pd.DataFrame) -> None:
    frame["split"] = assign_splits(frame, by="lesion", seed=0)
    assert frame.groupby("lesion_id")["split"].nunique().max() == 1
    assert frame.groupby("patient_id")["split"].nunique().max() > 1


def test_synthetic_cases_and_their_sources_only_in_train(frame: pd.DataFrame) -> None:
    sources = frame.sample(30, random_state=0)
    fakes = cases_to_frame(
        Case(case_id=f"gen-{cid}", image_paths=["/gen.png"], source="gan", synthetic=True, derived_from=cid,
             diagnosis_id=label)
        for cid, label in zip(sources["case_id"], sources["diagnosis_id"])
    )
    both = pd.concat([frame, fakes], ignore_index=True)
    both["split"] = assign_splits(both, seed=0)
    assert set(both.loc[both["synthetic"].astype(bool), "split"]) == {"train"}
    assert set(both.loc[both["case_id"].isin(sources["case_id"]), "split"]) == {"train"}
    real = both[~both["synthetic"].astype(bool)]
    assert 0.6 < (real["split"] == "train").mean() < 0.8


def test_temporal_puts_earliest_in_train_latest_in_test() -> None:
    start = datetime(2021, 1, 1)
    frame = cases_to_frame(
        Case(case_id=f"c{i}", image_paths=["/x.png"], source="s", patient_id=f"p{i}",
             diagnosis_id=CLASSES[i % 2], date=start + timedelta(days=(i * 37) % 100))
        for i in range(100)
    )
    frame["split"] = assign_splits(frame, temporal=True, val=0.2, test=0.2, seed=0)
    dates = frame.groupby("split")["date"].agg(["min", "max"])
    assert dates.loc["train", "max"] <= dates.loc["val", "min"]
    assert dates.loc["val", "max"] <= dates.loc["test", "min"]
    assert frame["split"].value_counts().to_dict() == {"train": 60, "val": 20, "test": 20}


def test_temporal_keeps_groups_whole(frame: pd.DataFrame) -> None:
    frame["split"] = assign_splits(frame, temporal=True, seed=0)
    assert frame.groupby("patient_id")["split"].nunique().max() == 1
    latest = frame.groupby("patient_id")["date"].max()
    split_of = frame.groupby("patient_id")["split"].first()
    assert latest[split_of == "train"].max() <= latest[split_of == "test"].min()


def test_temporal_without_dates_is_an_error(frame: pd.DataFrame) -> None:
    frame.loc[5, "date"] = None
    with pytest.raises(InputError, match="needs a date") as info:
        assign_splits(frame, temporal=True)
    assert info.value.row == 6 and info.value.field == "date"


@pytest.mark.parametrize(("val", "test"), [(0.5, 0.5), (0.7, 0.4), (-0.1, 0.2), (0.2, 1.0)])
def test_fractions_that_do_not_fit(frame: pd.DataFrame, val: float, test: float) -> None:
    with pytest.raises(InputError, match="--val|--test"):
        assign_splits(frame, val=val, test=test)


def test_unknown_grouping(frame: pd.DataFrame) -> None:
    with pytest.raises(InputError, match="unknown grouping 'hospital'"):
        assign_splits(frame, by="hospital")


def test_zero_val_fraction_leaves_val_empty(frame: pd.DataFrame) -> None:
    splits = assign_splits(frame, val=0.0, test=0.2, seed=0)
    assert "val" not in set(splits)


def test_split_counts_and_text() -> None:
    frame = pd.DataFrame({"diagnosis_id": ["a", "a", "b", None], "split": ["train", "test", "train", "val"]})
    counts = split_counts(frame)
    assert counts == {"train": {"a": 1, "b": 1}, "val": {"(unlabelled)": 1}, "test": {"a": 1}}
    text = format_split_counts(counts).splitlines()
    assert text[0].split() == ["class", "train", "val", "test"]
    assert text[-1].split() == ["total", "2", "1", "1"]


def test_cli_split_writes_the_table_in_place(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = write_table(synthetic_cases(patients=60), tmp_path / "cases")
    assert main(["data", "split", str(table), "--by", "patient", "--seed", "4", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    written = read_table(table)
    assert written["split"].notna().all()
    assert written.groupby("patient_id")["split"].nunique().max() == 1
    assert summary["counts"] == split_counts(written)
    assert summary["cases"] == len(written) == sum(sum(c.values()) for c in summary["counts"].values())
    assert read_manifest(table)["split"] == {"by": "patient", "val": 0.15, "test": 0.15, "seed": 4,
                                             "temporal": False, "link_images": None}
    assert main(["data", "split", str(table), "--seed", "4"]) == 0
    assert "total" in capsys.readouterr().out


def test_cli_bad_input_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = write_table(synthetic_cases(patients=5), tmp_path / "cases")
    assert main(["data", "split", str(table), "--val", "0.6", "--test", "0.4"]) == 2
    assert "must be below 1" in capsys.readouterr().err
    frame = read_table(table)
    frame.loc[2, "date"] = None
    write_table(frame, table)
    assert main(["data", "split", str(table), "--temporal"]) == 2
    assert f"file {table}, row 3, field 'date': --temporal needs a date" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["data", "split", str(tmp_path / "empty")]) == 2
    assert "no case table here" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "split", str(table), "--by", "hospital"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'hospital'" in capsys.readouterr().err


def test_a_stratified_sample_keeps_each_diagnosis_share_and_the_rows_splits() -> None:
    frame = pd.DataFrame({"case_id": [f"c{i}" for i in range(1000)],
                          "diagnosis_id": ["nevus"] * 700 + ["melanoma"] * 200 + ["dermatofibroma"] * 100,
                          "split": (["train", "val", "test", "train"] * 250)})
    sample = stratified_sample(frame, 100, seed=1)
    assert sample["diagnosis_id"].value_counts().to_dict() == {"nevus": 70, "melanoma": 20, "dermatofibroma": 10}
    original = frame.set_index("case_id")["split"]
    assert (sample["split"] == original[sample["case_id"]].to_numpy()).all()
    assert list(sample["case_id"]) == sorted(sample["case_id"], key=lambda c: int(c[1:]))  # table order
    assert stratified_sample(frame, 5000).equals(frame)
