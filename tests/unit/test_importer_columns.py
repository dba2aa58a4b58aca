"""Every column an importer reads is declared and checked up front; image paths stay in the images folder."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest

from dermkit.core.errors import InputError
from dermkit.data.importers import IMPORTERS, run_import
from dermkit.data.importers.csv_files import CsvColumns, SourceCsv, UndeclaredColumnError, rows
from dermkit.data.table import read_cases

REPO_ROOT = Path(__file__).resolve().parents[2]
FALSE_COLUMNS = ("smoke", "drink", "pesticide", "skin_cancer_history", "cancer_history", "has_piped_water",
                 "has_sewage_system", "itch", "grew", "hurt", "changed", "bleed", "elevation")


@dataclass
class Release:
    """One valid row per CSV of a source (keyed by the importer's ``csv_columns`` roles) and its images."""

    files: dict[str, tuple[str, dict[str, str]]]  # role -> (file name, the row)
    images: list[str]
    options: Callable[[Path], dict[str, str]] = field(default=lambda folder: {})

    def write(self, folder: Path, make_image: Callable[..., Path], without: tuple[str, str] | None = None) -> Path:
        """Lay the release out at ``folder``, leaving column ``without = (role, column)`` out of its CSV."""
        folder.mkdir(parents=True, exist_ok=True)
        for role, (name, row) in self.files.items():
            kept = {column: value for column, value in row.items() if (role, column) != without}
            with open(folder / name, "w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=list(kept))
                writer.writeheader()
                writer.writerow(kept)
        for image in self.images:
            make_image(image, folder=folder)
        return folder


RELEASES = {
    "ham10000": Release({"metadata.csv": ("metadata.csv", {
        "lesion_id": "HAM_1", "image_id": "ISIC_1", "dx": "nv", "dx_type": "histo", "age": "40", "sex": "male",
        "localization": "back"})}, ["images/ISIC_1.jpg"]),
    "pad-ufes-20": Release({"metadata.csv": ("metadata.csv", {
        "patient_id": "PAT_1", "lesion_id": "1", "age": "40", "gender": "MALE", "fitspatrick": "2", "region": "BACK",
        "diagnostic": "NEV", "img_id": "PAT_1_1_1.png", **dict.fromkeys(FALSE_COLUMNS, "False"),
        "diameter_1": "5.0", "diameter_2": "4.0", "background_father": "BRAZIL", "background_mother": "BRAZIL",
        "biopsed": "False"})}, ["images/PAT_1_1_1.png"]),
    "ddi": Release({"ddi_metadata.csv": ("ddi_metadata.csv", {
        "DDI_ID": "1", "DDI_file": "000001.png", "skin_tone": "12", "malignant": "True",
        "disease": "melanoma-in-situ"})}, ["images/000001.png"]),
    "fitzpatrick17k": Release({"fitzpatrick17k.csv": ("fitzpatrick17k.csv", {
        "md5hash": "abc", "fitzpatrick_scale": "3", "fitzpatrick_centaur": "2", "label": "melanoma",
        "nine_partition_label": "malignant melanoma", "three_partition_label": "malignant", "qc": "",
        "url": "https://example.org/a.jpg", "url_alphanum": "a.jpg"})}, ["images/abc.jpg"]),
    "derm1m": Release({"Derm1M_v2_pretrain.csv": ("Derm1M_v2_pretrain.csv", {
        "filename": "youtube/a.jpg", "caption": "A red scaly plaque typical of psoriasis.",
        "truncated_caption": "A red scaly plaque.", "source": "youtube", "source_type": "edu",
        "disease_label": "Psoriasis", "hierarchical_disease_label": "inflammatory, psoriasis",
        "skin_concept": "plaque", "body_location": "elbow", "symptoms": "itching", "age": "45", "gender": "male"})},
        ["youtube/a.jpg"]),
    "isic": Release({
        "ground_truth.csv": ("ISIC_2019_Training_GroundTruth.csv", {"image": "ISIC_1", "MEL": "1.0", "NV": "0.0"}),
        "metadata.csv": ("meta.csv", {"image": "ISIC_1", "age_approx": "55", "anatom_site_general": "anterior torso",
                                      "lesion_id": "L1", "sex": "female"}),
    }, ["ISIC_1.jpg"], options=lambda folder: {"metadata": str(folder / "meta.csv")}),
    "isic-archive": Release({"metadata.csv": ("metadata.csv", {
        "image_id": "ISIC_1", "file": "images/ISIC_1.jpg", "label": "nevus", "ham10000_lesion_id": ""})},
        ["images/ISIC_1.jpg"]),
    "scin": Release({
        "scin_cases.csv": ("scin_cases.csv", {"case_id": "1", "image_1_path": "dataset/images/1.png",
                                              "age_group": "AGE_30_TO_39", "body_parts_arm": "YES"}),
        "scin_labels.csv": ("scin_labels.csv", {"case_id": "1", "dermatologist_skin_condition_on_label_name":
                                                "['Eczema']", "dermatologist_skin_condition_confidence": "[4]"}),
    }, ["dataset/images/1.png"]),
}


def declared(source: str) -> dict[str, CsvColumns]:
    return dict(IMPORTERS[source].csv_columns)


def test_every_importer_reading_a_csv_declares_its_columns_and_has_a_release_here() -> None:
    # csv maps its columns with -o (checked by its own tests); imagefolder reads no CSV.
    with_csv = {name for name, importer in IMPORTERS.items() if importer.csv_columns}
    assert with_csv == set(RELEASES)
    for source, release in RELEASES.items():
        assert set(release.files) == set(declared(source)), source
        for role, (_, row) in release.files.items():
            assert set(declared(source)[role].required) <= set(row), (source, role)


@pytest.mark.parametrize("source", sorted(RELEASES))
def test_the_minimal_release_imports(source: str, tmp_path: Path, make_image: Callable[..., Path]) -> None:
    folder = RELEASES[source].write(tmp_path / source, make_image)
    result = run_import(source, folder, tmp_path / "out", options=RELEASES[source].options(folder))
    assert result.cases == 1 and result.problems == []


REQUIRED = [(source, role, column) for source in sorted(RELEASES) for role, columns in declared(source).items()
            for column in columns.required]


@pytest.mark.parametrize(("source", "role", "column"), REQUIRED, ids=[f"{s}-{c}" for s, _, c in REQUIRED])
def test_each_required_column_is_checked_before_any_row(source: str, role: str, column: str, tmp_path: Path,
                                                        make_image: Callable[..., Path]) -> None:
    release = RELEASES[source]
    folder = release.write(tmp_path / source, make_image, without=(role, column))
    with pytest.raises(InputError) as caught:
        run_import(source, folder, tmp_path / "out", options=release.options(folder), on_error="skip")
    error = caught.value
    assert error.field == column and error.row is None  # a missing column is not any row's fault
    assert Path(str(error.file)).name == release.files[role][0]
    assert "missing" in error.message


def test_a_row_holds_only_declared_columns() -> None:
    source = SourceCsv(Path("t.csv"), pd.DataFrame({"a": ["1"], "b": ["2"], "flag_x": ["YES"]}),
                       CsvColumns(required=("a",), optional=("c",), prefixes=("flag_",)))
    [(number, row)] = list(rows(source, "test"))
    assert number == 1 and dict(row) == {"a": "1", "flag_x": "YES"}
    assert row["c"] == "" and row.get("c") == ""  # declared but absent: missing
    with pytest.raises(UndeclaredColumnError, match="'b'"):
        row.get("b")  # in the file, but not declared: an importer bug, not silently empty


def test_several_missing_columns_are_named_together(tmp_path: Path, make_image: Callable[..., Path]) -> None:
    folder = RELEASES["ham10000"].write(tmp_path / "ham", make_image, without=("metadata.csv", "dx"))
    text = (folder / "metadata.csv").read_text().replace("localization", "place")
    (folder / "metadata.csv").write_text(text)
    with pytest.raises(InputError) as caught:
        run_import("ham10000", folder, tmp_path / "out")
    assert caught.value.field == "dx,localization"


def test_pad_without_biopsed_exits_2_naming_the_column(tmp_path: Path, make_image: Callable[..., Path]) -> None:
    folder = RELEASES["pad-ufes-20"].write(tmp_path / "pad", make_image, without=("metadata.csv", "biopsed"))
    env = {**os.environ, "PYTHONPATH": f"{REPO_ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    result = subprocess.run([sys.executable, "-m", "dermkit.cli", "data", "import", "pad-ufes-20", str(folder),
                             "--out", str(tmp_path / "out")], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 2, result.stderr
    assert "'biopsed'" in result.stderr and "metadata.csv" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


# -- image paths that leave the images folder ---------------------------------------------------

ESCAPES = ["../../outside", "/etc/hostname", "images/../../outside"]


@pytest.mark.parametrize("image_id", ESCAPES)
def test_ham10000_refuses_an_image_outside_its_images_folder(image_id: str, tmp_path: Path,
                                                             make_image: Callable[..., Path]) -> None:
    folder = RELEASES["ham10000"].write(tmp_path / "ham", make_image)
    make_image("outside.jpg", folder=tmp_path)  # it exists: the refusal is not a missing file
    text = (folder / "metadata.csv").read_text()
    (folder / "metadata.csv").write_text(text + f"HAM_2,{image_id},nv,histo,40,male,back\n")
    with pytest.raises(InputError) as caught:
        run_import("ham10000", folder, tmp_path / "out")
    error = caught.value
    assert (Path(str(error.file)).name, error.row, error.field) == ("metadata.csv", 2, "image_id")
    assert "leaves the images folder" in error.message and image_id in error.message

    result = run_import("ham10000", folder, tmp_path / "out", on_error="skip")
    assert [case.case_id for case in read_cases(tmp_path / "out")] == ["ham10000:ISIC_1"]
    assert [(p["row"], p["field"]) for p in result.problems] == [(2, "image_id")]


@pytest.mark.parametrize("path", ["../outside.png", "/etc/hostname"])
def test_scin_refuses_an_image_outside_its_images_folder(path: str, tmp_path: Path,
                                                         make_image: Callable[..., Path]) -> None:
    release = RELEASES["scin"]
    folder = release.write(tmp_path / "scin", make_image)
    make_image("outside.png", folder=tmp_path)
    cases = (folder / "scin_cases.csv").read_text().splitlines()
    (folder / "scin_cases.csv").write_text("\n".join([*cases, f"2,{path},AGE_30_TO_39,"]) + "\n")
    result = run_import("scin", folder, tmp_path / "out", on_error="skip", options={"images": str(folder)})
    assert [(p["row"], p["field"]) for p in result.problems] == [(2, "image_1_path")]
    assert "leaves the images folder" in result.problems[0]["message"]
    assert [case.case_id for case in read_cases(tmp_path / "out")] == ["scin:1"]


def test_a_symbolic_link_inside_the_images_folder_is_followed(tmp_path: Path, make_image: Callable[..., Path]) -> None:
    """The check is on the CSV's text: a link the owner of the folder made is the folder's business."""
    folder = RELEASES["ham10000"].write(tmp_path / "ham", make_image)
    elsewhere = make_image("store/ISIC_2.jpg", folder=tmp_path)
    (folder / "images" / "ISIC_2.jpg").symlink_to(elsewhere)
    text = (folder / "metadata.csv").read_text()
    (folder / "metadata.csv").write_text(text + "HAM_2,ISIC_2,nv,histo,40,male,back\n")
    cases = {case.case_id: case for case in read_cases(run_import("ham10000", folder, tmp_path / "out").out_dir)}
    assert cases["ham10000:ISIC_2"].image_paths == [str(elsewhere.resolve())]
