"""The isic-archive importer on a small synthetic copy of its layout (metadata.csv + images/)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from dermkit.core.errors import InputError
from dermkit.data.importers import run_import
from dermkit.data.table import read_table
from dermkit.models.ddx_net import LabelSpace

# The nine folder labels of the release, and the HAM10000 class each counts as (None: outside).
HAM_CLASS = {
    "melanoma": "melanoma", "nevus": "melanocytic_nevus", "basal cell carcinoma": "basal_cell_carcinoma",
    "actinic keratosis": "actinic_keratosis", "pigmented benign keratosis": "benign_keratosis",
    "seborrheic keratosis": "benign_keratosis", "dermatofibroma": "dermatofibroma",
    "vascular lesion": "vascular_neoplasm", "squamous cell carcinoma": None,
}


@pytest.fixture
def archive(tmp_path: Path, make_image: Callable[..., Path]) -> Path:
    root = tmp_path / "isic-archive"
    rows = []
    for number, label in enumerate(HAM_CLASS):
        image_id = f"ISIC_{number:07d}"
        make_image(f"{image_id}.jpg", folder=root / "images")
        rows.append({"image_id": image_id, "file": f"images/{image_id}.jpg", "label": label,
                     "ham10000_lesion_id": "HAM_0000001" if number < 2 else ""})
    pd.DataFrame(rows).to_csv(root / "metadata.csv", index=False)
    return root


def test_reads_the_layout_and_maps_the_folder_labels(archive: Path, tmp_path: Path) -> None:
    result = run_import("isic-archive", archive, tmp_path / "t", split="test")
    assert (result.cases, result.problems) == (9, [])
    frame = read_table(result.out_dir)
    assert frame["case_id"].iloc[0] == "isic-archive:ISIC_0000000"
    assert set(frame["split"]) == {"test"} and set(frame["acquisition"]) == {"dermoscopic"}
    assert set(frame["licence"]) == {"CC BY-NC 4.0"}
    assert frame["lesion_id"].tolist()[:3] == ["HAM_0000001", "HAM_0000001", None]
    assert all(Path(paths[0]).is_file() for paths in frame["image_paths"])
    by_label = dict(zip(frame["diagnosis"], frame["diagnosis_id"], strict=True))
    assert by_label["pigmented benign keratosis"] == "benign_keratosis"
    assert by_label["seborrheic keratosis"] == "seborrheic_keratosis"  # kept as the finer condition
    assert by_label["squamous cell carcinoma"] == "squamous_cell_carcinoma"


def test_labels_line_up_with_the_ham10000_label_space(archive: Path, tmp_path: Path) -> None:
    frame = read_table(run_import("isic-archive", archive, tmp_path / "t").out_dir)
    space = LabelSpace.build("ham10000", other=False)
    for label, condition in zip(frame["diagnosis"], frame["diagnosis_id"], strict=True):
        index = space.index_of(condition)
        assert (None if index is None else space.classes[index]) == HAM_CLASS[label], label


def test_an_unknown_label_names_the_row_and_column(archive: Path, tmp_path: Path) -> None:
    metadata = pd.read_csv(archive / "metadata.csv", dtype=str, keep_default_na=False)
    metadata.loc[3, "label"] = "pigmented benign keratosys"
    metadata.to_csv(archive / "metadata.csv", index=False)
    with pytest.raises(InputError) as raised:
        run_import("isic-archive", archive, tmp_path / "t")
    assert (raised.value.row, raised.value.field) == (4, "label")
    skipped = run_import("isic-archive", archive, tmp_path / "t", on_error="skip")
    assert skipped.cases == 8 and len(skipped.problems) == 1


def test_a_missing_image_names_the_file_column(archive: Path, tmp_path: Path) -> None:
    (archive / "images" / "ISIC_0000004.jpg").unlink()
    with pytest.raises(InputError) as raised:
        run_import("isic-archive", archive, tmp_path / "t")
    assert (raised.value.row, raised.value.field) == (5, "file")
