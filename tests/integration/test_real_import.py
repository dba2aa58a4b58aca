"""The importers on the real samples in ../shared/data (skipped where that folder is absent)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from dermkit.data.importers import run_import
from dermkit.data.table import read_cases, read_table

pytestmark = pytest.mark.realdata


def test_pad_ufes_20(pad_ufes_dir: Path, tmp_path: Path) -> None:
    result = run_import("pad-ufes-20", pad_ufes_dir, tmp_path / "pad")
    assert (result.cases, result.problems) == (415, [])
    cases = read_cases(result.out_dir)
    assert Counter(c.diagnosis for c in cases) == {"NEV": 126, "BCC": 108, "SEK": 78, "ACK": 63, "MEL": 29, "SCC": 11}
    assert all(c.diagnosis_id and c.differential == {c.diagnosis_id: 1.0} for c in cases)
    assert all(c.patient_id and c.lesion_id and c.body_site for c in cases)
    # About 60 % of rows carry a skin type, all within I–VI.
    typed = [c.fitzpatrick for c in cases if c.fitzpatrick is not None]
    assert 0.5 < len(typed) / len(cases) < 0.7 and set(typed) <= set(range(1, 7))
    # Splits group by patient: lesions never span two patients.
    patients_per_lesion = Counter(lesion for lesion, _ in {(c.lesion_id, c.patient_id) for c in cases})
    assert max(patients_per_lesion.values()) == 1


def test_ham10000(ham_dir: Path, tmp_path: Path) -> None:
    result = run_import("ham10000", ham_dir, tmp_path / "ham")
    assert (result.cases, result.problems) == (5984, [])
    frame = read_table(result.out_dir)
    assert frame["diagnosis"].value_counts().to_dict() == {
        "nv": 4323, "bkl": 583, "mel": 491, "bcc": 264, "akiec": 183, "vasc": 80, "df": 60,
    }
    assert frame["diagnosis_id"].notna().all()


def test_fitzpatrick17k_labels_without_images(fitzpatrick17k_dir: Path, tmp_path: Path) -> None:
    """No images are reachable: with the image check off, every row and label still imports."""
    result = run_import("fitzpatrick17k", fitzpatrick17k_dir, tmp_path / "fitz", check_images=False)
    assert (result.cases, result.problems) == (16577, [])
    frame = read_table(result.out_dir)
    assert frame["diagnosis"].nunique() == 114
    assert frame["diagnosis_id"].notna().all()
    # -1 ("unknown") becomes null; the rest are types I–VI.
    assert frame["fitzpatrick"].isna().sum() == 565
    assert set(frame["fitzpatrick"].dropna().astype(int)) == set(range(1, 7))


def test_isic_archive_all_928_images(isic_archive_dir: Path, tmp_path: Path) -> None:
    result = run_import("isic-archive", isic_archive_dir, tmp_path / "isic", split="test")
    assert (result.cases, result.problems) == (928, [])
    frame = read_table(result.out_dir)
    assert frame["diagnosis"].value_counts().to_dict() == {
        "melanoma": 376, "nevus": 295, "pigmented benign keratosis": 82, "basal cell carcinoma": 74,
        "squamous cell carcinoma": 38, "vascular lesion": 28, "dermatofibroma": 26, "actinic keratosis": 7,
        "seborrheic keratosis": 2,
    }
    assert set(frame["split"]) == {"test"} and frame["diagnosis_id"].notna().all()
