"""Derm1M, generic CSV and image-folder importers on small hand-written data."""

from __future__ import annotations

import csv
import dataclasses
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from dermkit.cli import main
from dermkit.core.errors import InputError
from dermkit.data.importers import run_import
from dermkit.data.importers.base import ImportContext, Where
from dermkit.data.importers.csv_table import CSVImporter
from dermkit.data.importers.derm1m import COLUMNS as DERM1M_COLUMNS
from dermkit.data.importers.derm1m import Derm1MImporter
from dermkit.data.importers.imagefolder import ImageFolderImporter
from dermkit.data.importers.values import parse_fitzpatrick
from dermkit.data.table import Case, read_cases
from dermkit.ontology import Ontology, default_ontology


def with_codes(codes: dict[str, str]) -> Ontology:
    """The shipped ontology plus a label table ``lab`` whose codes resolve nowhere else."""
    return dataclasses.replace(default_ontology(), mappings={**default_ontology().mappings, "lab": codes})


def write_csv(path: Path, columns: list[str], records: list[dict[str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(records)
    return path


def read(importer: object, path: Path, on_error: str = "raise", ontology: Ontology | None = None,
         ) -> tuple[dict[str, Case], ImportContext]:
    context = ImportContext(on_error=on_error, ontology=ontology or default_ontology())
    return {case.case_id: case for case in importer.read(path, context)}, context  # type: ignore[attr-defined]


# -- derm1m ---------------------------------------------------------------------------------------

PSORIASIS_PAIR = {
    "filename": "youtube/a.jpg",
    "caption": "A red scaly plaque on the elbow of a 45-year-old man, typical of psoriasis.",
    "truncated_caption": "A red scaly plaque on the elbow.", "source": "youtube", "source_type": "edu",
    "disease_label": "Psoriasis", "hierarchical_disease_label": "inflammatory, papulosquamous, psoriasis",
    "skin_concept": "papule, Ruler, shiny glitter", "body_location": "elbow, knee", "symptoms": "itching, weirdness",
    "age": "45-year-old", "gender": "male",
}
UNLABELLED_PAIR = {
    "filename": "pubmed/b.png", "caption": "Figure 2: close-up of the lesion.", "truncated_caption": "",
    "source": "pubmed", "source_type": "knowledge", "disease_label": "No definitive diagnosis",
    "hierarchical_disease_label": "No definitive diagnosis", "skin_concept": "No visual concepts",
    "body_location": "No body location information", "symptoms": "No symptom information",
    "age": "elderly", "gender": "No gender information",
}


@pytest.fixture
def derm1m_dir(tmp_path: Path, make_image: Callable[..., Path]) -> Path:
    make_image("youtube/a.jpg", folder=tmp_path)
    make_image("pubmed/b.png", folder=tmp_path)
    second = {**PSORIASIS_PAIR, "caption": "Psoriasis plaque, second description."}
    write_csv(tmp_path / "Derm1M_v2_pretrain.csv", list(DERM1M_COLUMNS.required),
              [PSORIASIS_PAIR, second, UNLABELLED_PAIR])
    return tmp_path


def test_derm1m_keeps_caption_and_maps_tags(derm1m_dir: Path) -> None:
    cases = read(Derm1MImporter(), derm1m_dir)[0]
    case = cases["derm1m:youtube/a.jpg"]
    assert case.caption == PSORIASIS_PAIR["caption"]
    assert case.diagnosis == "Psoriasis" and case.differential == {"psoriasis": 1.0}
    assert case.concepts == ["papule", "ruler"]
    assert case.body_site == "elbow" and case.extra["body_sites"] == ["elbow", "knee"]
    assert case.symptoms == ["itch"]
    assert case.extra["unmapped"] == {"skin_concept": ["shiny glitter"], "symptoms": ["weirdness"]}
    assert case.age == 45.0 and case.sex == "male"
    assert case.extra["hierarchical_disease_label"] == "inflammatory, papulosquamous, psoriasis"
    assert case.extra["derm1m_source"] == "youtube" and case.extra["source_type"] == "edu"


def test_derm1m_second_caption_of_an_image_shares_its_lesion_id(derm1m_dir: Path) -> None:
    cases = read(Derm1MImporter(), derm1m_dir)[0]
    first, second = cases["derm1m:youtube/a.jpg"], cases["derm1m:youtube/a.jpg#2"]
    assert second.caption == "Psoriasis plaque, second description."
    assert first.lesion_id == second.lesion_id == "youtube/a.jpg"
    assert first.image_paths == second.image_paths


def test_derm1m_placeholders_are_missing_values(derm1m_dir: Path) -> None:
    case = read(Derm1MImporter(), derm1m_dir)[0]["derm1m:pubmed/b.png"]
    assert case.differential is None and case.diagnosis is None
    assert case.concepts is None and case.body_site is None and case.symptoms is None
    assert case.sex is None and case.age is None and case.extra["age_text"] == "elderly"
    assert case.extra["unmapped"] == {}


def test_derm1m_unknown_disease_is_rejected(derm1m_dir: Path) -> None:
    write_csv(derm1m_dir / "Derm1M_v2_pretrain.csv", list(DERM1M_COLUMNS.required),
              [UNLABELLED_PAIR, {**PSORIASIS_PAIR, "disease_label": "Dragon scale disease"}])
    with pytest.raises(InputError) as caught:
        read(Derm1MImporter(), derm1m_dir)
    assert (caught.value.row, caught.value.field) == (2, "disease_label")
    cases, context = read(Derm1MImporter(), derm1m_dir, on_error="skip")
    assert list(cases) == ["derm1m:pubmed/b.png"] and len(context.problems) == 1


def test_derm1m_images_option_and_licence(derm1m_dir: Path, tmp_path: Path) -> None:
    csv_file = derm1m_dir / "Derm1M_v2_pretrain.csv"
    moved = tmp_path / "elsewhere" / "Derm1M_v2_pretrain.csv"
    moved.parent.mkdir()
    csv_file.rename(moved)
    result = run_import("derm1m", moved, tmp_path / "table", options={"images": str(derm1m_dir)})
    cases = read_cases(result.out_dir)
    assert len(cases) == 3 and {c.licence for c in cases} == {"CC BY-NC 4.0"}


# -- csv -----------------------------------------------------------------------------------------

MAPPING = {"case_id": "ID", "image": "file", "diagnosis": "dx", "age": "Age", "sex": "Sex", "fitzpatrick": "fst",
           "body_site": "site", "patient_id": "pid"}
CSV_COLUMNS = ["ID", "file", "dx", "Age", "Sex", "fst", "site", "pid"]


@pytest.fixture
def csv_file(tmp_path: Path, make_image: Callable[..., Path]) -> Path:
    make_image("pics/one.png", folder=tmp_path)
    make_image("pics/two.png", folder=tmp_path)
    return write_csv(tmp_path / "table.csv", CSV_COLUMNS, [
        {"ID": "p1", "file": "pics/one.png", "dx": "Melanoma", "Age": "61", "Sex": "F", "fst": "III",
         "site": "back", "pid": "A"},
        {"ID": "p2", "file": "pics/two.png", "dx": "mole", "Age": "", "Sex": "male", "fst": "FST5",
         "site": "", "pid": "A"},
    ])


def test_csv_maps_columns_to_fields(csv_file: Path) -> None:
    cases = read(CSVImporter({**MAPPING, "acquisition": "dermoscopic"}), csv_file)[0]
    first, second = cases["csv:p1"], cases["csv:p2"]
    assert (first.diagnosis_id, first.age, first.sex, first.fitzpatrick, first.body_site, first.patient_id) == (
        "melanoma", 61.0, "female", 3, "back", "A")
    assert (second.diagnosis_id, second.age, second.fitzpatrick, second.body_site) == (
        "melanocytic_nevus", None, 5, None)
    assert first.differential == {"melanoma": 1.0} and first.acquisition == "dermoscopic"
    assert Path(first.image_paths[0]).is_absolute() and Path(first.image_paths[0]).name == "one.png"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("3", 3), ("3.0", 3), ("IV", 4), ("vi", 6), ("FST2", 2), ("type III", 3), ("Fitzpatrick skin type V", 5),
     ("", None), ("-1", None)],
)
def test_csv_fitzpatrick_spellings(text: str, expected: int | None) -> None:
    assert parse_fitzpatrick(text, Where(Path("t.csv"), 1), "fst") == expected


@pytest.mark.parametrize("text", ["7", "VII", "type 0", "pale"])
def test_csv_fitzpatrick_out_of_range(text: str) -> None:
    with pytest.raises(InputError, match="not a Fitzpatrick type"):
        parse_fitzpatrick(text, Where(Path("t.csv"), 1), "fst")


def test_csv_label_source_uses_that_sources_codes(tmp_path: Path, make_image: Callable[..., Path]) -> None:
    make_image("x.png", folder=tmp_path)
    table = write_csv(tmp_path / "codes.csv", ["file", "dx"], [{"file": "x.png", "dx": "X7"}])
    options = {"image": "file", "diagnosis": "dx"}
    cases = read(CSVImporter({**options, "label_source": "lab"}), table, ontology=with_codes({"x7": "melanoma"}))[0]
    assert cases["csv:x.png"].diagnosis_id == "melanoma"
    with pytest.raises(InputError, match="X7"):
        read(CSVImporter(options), table, ontology=with_codes({"x7": "melanoma"}))
    with pytest.raises(InputError, match="no label table"):
        read(CSVImporter({**options, "label_source": "labs"}), table)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({**MAPPING, "diagnoses": "dx"}, "diagnoses"),  # unknown key
        ({"diagnosis": "dx"}, "image"),  # image is required
        ({"image": "file"}, "diagnosis"),  # a label, or unlabelled=yes
        ({"image": "file", "unlabelled": "perhaps"}, "unlabelled"),
        ({**MAPPING, "acquisition": "xray"}, "acquisition"),
    ],
)
def test_csv_bad_options_name_the_option(options: dict[str, str], field: str) -> None:
    with pytest.raises(InputError) as caught:
        CSVImporter(options)
    assert caught.value.field == field


def test_csv_unlabelled_import(csv_file: Path) -> None:
    cases = read(CSVImporter({"image": "file", "unlabelled": "yes"}), csv_file)[0]
    assert set(cases) == {"csv:pics/one.png", "csv:pics/two.png"}
    assert all(case.differential is None and case.diagnosis is None for case in cases.values())


def test_csv_missing_mapped_column_names_it(csv_file: Path) -> None:
    with pytest.raises(InputError, match=r"-o age=age .*'Age'") as caught:
        read(CSVImporter({**MAPPING, "age": "age"}), csv_file)
    assert caught.value.field == "age"


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [("Age", "old", "age:"), ("fst", "VII", "fitzpatrick:"), ("dx", "Dragon scale", "diagnosis:"),
     ("site", "tail", "body_site:"), ("Sex", "robot", "sex:")],
)
def test_csv_bad_value_names_mapped_field_and_column(csv_file: Path, column: str, value: str, message: str) -> None:
    rows = list(csv.DictReader(csv_file.open()))
    rows[1][column] = value
    write_csv(csv_file, CSV_COLUMNS, rows)
    with pytest.raises(InputError) as caught:
        read(CSVImporter(MAPPING), csv_file)
    assert (caught.value.row, caught.value.field) == (2, column)
    assert caught.value.message.startswith(message)


def test_csv_missing_image_is_reported_at_its_row(csv_file: Path, tmp_path: Path) -> None:
    rows = list(csv.DictReader(csv_file.open()))
    rows[1]["file"] = "pics/gone.png"
    write_csv(csv_file, CSV_COLUMNS, rows)
    result = run_import("csv", csv_file, tmp_path / "table", options=MAPPING, on_error="skip")
    assert result.cases == 1
    assert [(p["row"], p["field"]) for p in result.problems] == [(2, "file")]


def test_csv_through_the_command_line(csv_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    options = [arg for key, column in MAPPING.items() for arg in ("-o", f"{key}={column}")]
    assert main(["data", "import", "csv", str(csv_file), "--out", str(tmp_path / "t"), *options]) == 0
    assert {c.case_id for c in read_cases(tmp_path / "t")} == {"csv:p1", "csv:p2"}
    assert main(["data", "import", "csv", str(csv_file), "--out", str(tmp_path / "u"), "-o", "imag=file"]) == 2
    assert "did you mean 'image'" in capsys.readouterr().err
    assert not (tmp_path / "u").exists()


def test_csv_on_the_real_pad_ufes_sample(pad_ufes_dir: Path, tmp_path: Path) -> None:
    options = {"image": "img_id", "diagnosis": "diagnostic", "label_source": "pad-ufes-20", "patient_id": "patient_id",
               "age": "age", "sex": "gender", "fitzpatrick": "fitspatrick", "body_site": "region",
               "images": str(pad_ufes_dir / "images")}
    result = run_import("csv", pad_ufes_dir / "metadata.csv", tmp_path / "t", options=options, check_images=False)
    cases = read_cases(result.out_dir)
    counts = Counter(case.diagnosis for case in cases)
    assert counts == {"BCC": 108, "NEV": 126, "SEK": 78, "ACK": 63, "MEL": 29, "SCC": 11}
    assert all(Path(case.image_paths[0]).is_file() for case in cases)
    assert 0.5 < sum(case.fitzpatrick is not None for case in cases) / len(cases) < 0.7


# -- imagefolder ---------------------------------------------------------------------------------

@pytest.fixture
def class_dir(tmp_path: Path, make_image: Callable[..., Path]) -> Path:
    root = tmp_path / "classes"
    make_image("Melanoma/a.png", folder=root)
    make_image("nevus/sub/b.jpg", folder=root)
    make_image("nevus/.hidden.png", folder=root)
    (root / "nevus" / "notes.txt").write_text("not an image")
    make_image(".cache/c.png", folder=root)
    return root


def test_imagefolder_maps_folders_through_the_ontology(class_dir: Path) -> None:
    cases = read(ImageFolderImporter(), class_dir)[0]
    assert {case_id: case.diagnosis_id for case_id, case in cases.items()} == {
        "imagefolder:Melanoma/a.png": "melanoma", "imagefolder:nevus/sub/b.jpg": "melanocytic_nevus"}
    assert cases["imagefolder:nevus/sub/b.jpg"].diagnosis == "nevus"


def test_imagefolder_unknown_class_names_the_folder(class_dir: Path, make_image: Callable[..., Path]) -> None:
    make_image("Dragonpox/d.png", folder=class_dir)
    with pytest.raises(InputError, match="Dragonpox") as caught:
        read(ImageFolderImporter(), class_dir)
    assert Path(str(caught.value.file)) == class_dir / "Dragonpox"
    cases, context = read(ImageFolderImporter(), class_dir, on_error="skip")
    assert len(cases) == 2 and len(context.problems) == 1


def test_imagefolder_label_source_codes_and_options(tmp_path: Path, make_image: Callable[..., Path]) -> None:
    make_image("X7/1.png", folder=tmp_path / "codes")
    make_image("nevus/2.png", folder=tmp_path / "codes")
    importer = ImageFolderImporter({"label_source": "lab", "acquisition": "dermoscopic"})
    cases = read(importer, tmp_path / "codes", ontology=with_codes({"x7": "melanoma"}))[0]
    assert {c.diagnosis_id for c in cases.values()} == {"melanoma", "melanocytic_nevus"}
    assert {c.acquisition for c in cases.values()} == {"dermoscopic"}
    with pytest.raises(InputError, match="no label table"):
        read(ImageFolderImporter({"label_source": "labs"}), tmp_path / "codes")
    with pytest.raises(InputError):
        ImageFolderImporter({"images": "x"})
