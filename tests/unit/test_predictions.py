"""The predictions table: validation, Parquet round trip with metadata, and the ISIC CSV export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from dermkit.core import InputError
from dermkit.data.predictions import Predictions, read_predictions, write_predictions
from dermkit.evaluate.isic import to_isic_csv

CLASSES = ("melanoma", "nevus", "bcc")


@pytest.fixture
def predictions() -> Predictions:
    cases = pd.DataFrame(
        {
            "case_id": ["ham:1", "ham:2", "ham:3", "ham:4"],
            "patient_id": ["p1", "p1", None, "p2"],
            "fitzpatrick": [2, None, 5, 3],
            "sex": ["female", "male", None, "female"],
            "age": [35.0, None, 70.0, 52.0],
            "source": "ham10000",
            "image_paths": [["a.jpg"]] * 4,  # case-table columns outside the schema are dropped
        }
    )
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4], [0.25, 0.25, 0.5]])
    return Predictions.from_cases(cases, probs, [0, 1, 2, -1], "clip-vit-b16@abc", CLASSES)


def test_parquet_round_trip_keeps_values_and_metadata(predictions: Predictions, tmp_path: Path) -> None:
    path = tmp_path / "preds.parquet"
    write_predictions(predictions, path)
    back = read_predictions(path)
    assert back.model_id == "clip-vit-b16@abc"
    assert back.classes == CLASSES
    np.testing.assert_array_equal(back.probs(), predictions.probs())
    np.testing.assert_array_equal(back.labels(), [0, 1, 2, -1])
    assert back.frame["patient_id"].isna().tolist() == [False, False, True, False]
    assert back.frame["fitzpatrick"].iloc[0] == 2 and pd.isna(back.frame["fitzpatrick"].iloc[1])
    assert "image_paths" not in back.frame.columns
    assert pq.read_schema(path).field("probs").type.value_type.bit_width == 64
    assert list(tmp_path.iterdir()) == [path]  # the atomic write left no temporary file


def test_labelled_drops_only_unlabelled_rows(predictions: Predictions) -> None:
    labelled = predictions.labelled()
    assert len(labelled) == 3
    assert labelled.frame["case_id"].tolist() == ["ham:1", "ham:2", "ham:3"]


def test_invalid_tables_are_refused(predictions: Predictions, tmp_path: Path) -> None:
    frame = predictions.frame
    with pytest.raises(InputError, match="one score per class"):
        Predictions(frame, "m", CLASSES[:2])
    with pytest.raises(InputError, match="one score per class"):
        Predictions(frame.assign(probs=[None, *frame["probs"][1:]]), "m", CLASSES)
    with pytest.raises(InputError, match="unique"):
        Predictions(pd.concat([frame, frame.iloc[:1]]), "m", CLASSES)
    with pytest.raises(InputError, match="label"):
        Predictions(frame.assign(label=[0, 1, 3, 0]), "m", CLASSES)
    with pytest.raises(InputError, match="label"):
        Predictions(frame.assign(label=[0, 1, None, 0.5]), "m", CLASSES)
    plain = tmp_path / "plain.parquet"
    frame[["case_id"]].to_parquet(plain)
    with pytest.raises(InputError, match="metadata"):
        read_predictions(plain)


def test_isic_csv_export(predictions: Predictions, tmp_path: Path) -> None:
    scores, truth = tmp_path / "pred.csv", tmp_path / "truth.csv"
    assert to_isic_csv(predictions, scores) == 2018
    written = pd.read_csv(scores, dtype={"image": str})
    assert list(written.columns) == ["image", "MEL", "NV", "BCC"]  # the challenge's names of the classes
    assert list(written["image"]) == ["1", "2", "3", "4"]  # case ids without the source prefix
    np.testing.assert_array_equal(written[["MEL", "NV", "BCC"]].to_numpy(), predictions.probs())
    with pytest.raises(InputError):
        to_isic_csv(predictions, truth, truth=True)  # the unlabelled row has no ground truth
    to_isic_csv(predictions.labelled(), truth, truth=True)
    np.testing.assert_array_equal(pd.read_csv(truth)[["MEL", "NV", "BCC"]].to_numpy(), np.eye(3))
    logits = Predictions(predictions.frame.assign(probs=[[2.0, -1.0, 0.0]] * 4), "m", CLASSES)
    with pytest.raises(InputError):
        to_isic_csv(logits, tmp_path / "bad.csv")


def test_resampling_units_prefer_the_patient_then_the_lesion_then_the_row():
    from dermkit.data.predictions import resampling_units

    frame = pd.DataFrame({"patient_id": ["p1", None, None, "p1"], "lesion_id": ["l1", "l2", None, "l9"]})
    units = resampling_units(frame)
    assert list(units) == ["patient_id:p1", "lesion_id:l2", None, "patient_id:p1"]
    assert list(resampling_units(pd.DataFrame({"lesion_id": ["a", "a"]}))) == ["lesion_id:a", "lesion_id:a"]


def test_isic_columns_follow_the_label_space():
    from dermkit.evaluate.isic import isic_columns

    ham = ["melanoma", "melanocytic_nevus", "basal_cell_carcinoma", "actinic_keratosis", "benign_keratosis",
           "dermatofibroma", "vascular_neoplasm"]
    assert isic_columns(ham)[:2] == (2018, ["MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"])
    edition, columns, _codes = isic_columns([*ham, "squamous_cell_carcinoma", "other"])
    assert (edition, columns) == (2019, ["MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK"])
    # a finer class goes to its nearest ISIC ancestor: seborrheic keratosis is a benign keratosis
    assert isic_columns(["melanoma", "seborrheic_keratosis"])[2] == ["MEL", "BKL"]
    with pytest.raises(InputError, match="psoriasis"):
        isic_columns(["melanoma", "psoriasis"])


def test_classes_sharing_an_isic_column_are_summed(tmp_path: Path) -> None:
    frame = pd.DataFrame({"case_id": ["isic:ISIC_1", "isic:ISIC_2"], "label": [0, 2],
                          "probs": [[0.5, 0.2, 0.3], [0.1, 0.3, 0.6]]})
    predictions = Predictions(frame, "m", ("melanoma", "unknown_or_other", "other"))
    assert to_isic_csv(predictions, tmp_path / "p.csv") == 2019
    written = pd.read_csv(tmp_path / "p.csv")
    assert list(written.columns) == ["image", "MEL", "UNK"]
    np.testing.assert_allclose(written["UNK"], [0.5, 0.9])
