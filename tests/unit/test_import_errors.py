"""Every bad input of the import pipeline fails (or is skipped) naming its file, row and field."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import png_claiming  # tests/ is on sys.path under pytest
from dermkit.cli import main
from dermkit.core.errors import InputError
from dermkit.data.importers import run_import
from dermkit.data.table import MANIFEST_FILE, REPORT_FILE, TABLE_FILE, read_cases

# Two good PAD-UFES-20 rows; each test breaks one thing.
PAD_HEADER = (
    "patient_id,lesion_id,smoke,drink,background_father,background_mother,age,pesticide,gender,skin_cancer_history,"
    "cancer_history,has_piped_water,has_sewage_system,fitspatrick,region,diameter_1,diameter_2,diagnostic,itch,"
    "grew,hurt,changed,bleed,elevation,img_id,biopsed"
)
PAD_ROWS = [
    ("PAT_1,11,False,True,ITALY,ITALY,61,False,MALE,True,False,True,True,2.0,BACK,8.0,7.0,BCC,True,False,False,False,"
    "True,True,PAT_1_11_1.png,True"),
    "PAT_2,22,,,,,40,,,,,,,,CHEST,,,NEV,False,False,False,False,False,False,PAT_2_22_2.png,False",
]
PAD_IMAGES = ("PAT_1_11_1.png", "PAT_2_22_2.png")


@pytest.fixture
def pad(tmp_path: Path, make_image: Callable[..., Path]) -> Callable[..., Path]:
    """Write a PAD-UFES-20 release whose CSV is changed by ``(old, new)`` replacements; return its folder."""

    def write(*replacements: tuple[str, str], rows: list[str] | None = None) -> Path:
        folder = tmp_path / "pad"
        text = "\n".join([PAD_HEADER, *(PAD_ROWS if rows is None else rows)]) + "\n"
        for old, new in replacements:
            assert old in text, f"test setup: {old!r} not in the CSV"
            text = text.replace(old, new)
        folder.mkdir(exist_ok=True)
        (folder / "metadata.csv").write_text(text)
        for name in PAD_IMAGES:
            make_image(f"images/{name}", folder=folder)
        return folder

    return write


def import_error(path: Path, out: Path, source: str = "pad-ufes-20", **kwargs: object) -> InputError:
    """The error a failing import raises; it must also leave nothing at ``out``."""
    with pytest.raises(InputError) as caught:
        run_import(source, path, out, **kwargs)  # type: ignore[arg-type]
    assert not out.exists()
    return caught.value


def located(error: InputError) -> tuple[str | None, int | None, str | None]:
    return (None if error.file is None else Path(error.file).name, error.row, error.field)


# -- columns and values -------------------------------------------------------------------------

def test_missing_column(pad: Callable[..., Path], tmp_path: Path) -> None:
    error = import_error(pad((",region,", ",")), tmp_path / "out")
    assert located(error) == ("metadata.csv", None, "region")  # a column is wrong on every row
    assert "missing" in error.message


def test_misspelt_column_is_suggested(pad: Callable[..., Path], tmp_path: Path) -> None:
    error = import_error(pad((",fitspatrick,", ",fitzpatrik,")), tmp_path / "out")
    assert located(error) == ("metadata.csv", None, "fitspatrick")
    assert "'fitzpatrik'" in error.message and "misspelt" in error.message


def test_unknown_label(pad: Callable[..., Path], tmp_path: Path) -> None:
    error = import_error(pad((",NEV,", ",NEVV,")), tmp_path / "out")
    assert located(error) == ("metadata.csv", 2, "diagnostic")
    assert "NEVV" in error.message


def test_unknown_body_site(pad: Callable[..., Path], tmp_path: Path) -> None:
    error = import_error(pad((",CHEST,", ",CHESST,")), tmp_path / "out")
    assert located(error) == ("metadata.csv", 2, "region")
    assert "did you mean" in error.message


@pytest.mark.parametrize(("old", "new", "row", "field", "expected"), [
    (",61,", ",sixty,", 1, "age", "'sixty' is not a number"),
    (",40,", ",140,", 2, "age", "outside"),
    ("PAT_1,11,False,", "PAT_1,11,maybe,", 1, "smoke", "'maybe' is not a yes/no value"),
    (",2.0,BACK,", ",7.0,BACK,", 1, "fitspatrick", "outside"),
    (",8.0,7.0,", ",8.0,wide,", 1, "diameter_2", "'wide' is not a number"),
    (",MALE,", ",MAEL,", 1, "gender", "'MAEL'"),
])
def test_malformed_value(pad: Callable[..., Path], tmp_path: Path, old: str, new: str, row: int, field: str,
                         expected: str) -> None:
    error = import_error(pad((old, new)), tmp_path / "out")
    assert located(error) == ("metadata.csv", row, field)
    assert expected in error.message


def test_duplicated_case_id(pad: Callable[..., Path], tmp_path: Path) -> None:
    folder = pad(rows=[*PAD_ROWS, PAD_ROWS[0]])
    error = import_error(folder, tmp_path / "out")
    assert located(error) == ("metadata.csv", 3, "img_id")
    assert "duplicated" in error.message and "PAT_1_11_1" in error.message and "first at row 1" in error.message


# -- images -------------------------------------------------------------------------------------


def truncated(image: Path) -> bytes:
    return image.read_bytes()[: image.stat().st_size // 2]


@pytest.mark.parametrize(("damage", "expected"), [
    (lambda image: b"this is not an image", "not an image (JPEG, PNG, WebP, BMP, TIFF or GIF expected)"),
    (truncated, "not a readable image"),
    (lambda image: png_claiming(8000, 8000), "over the limit"),  # 64 MP claimed, under 1 KB on disk
], ids=["not-an-image", "truncated", "decompression-bomb"])
def test_bad_image(pad: Callable[..., Path], tmp_path: Path, damage: Callable[[Path], bytes], expected: str) -> None:
    folder = pad()
    image = folder / "images" / PAD_IMAGES[1]
    image.write_bytes(damage(image))
    assert image.stat().st_size < 4096
    error = import_error(folder, tmp_path / "out")
    assert located(error) == ("metadata.csv", 2, "img_id")
    assert expected in error.message and str(image) in error.message


def test_missing_image(pad: Callable[..., Path], tmp_path: Path) -> None:
    folder = pad()
    (folder / "images" / PAD_IMAGES[0]).unlink()
    error = import_error(folder, tmp_path / "out")
    assert located(error) == ("metadata.csv", 1, "img_id")
    assert PAD_IMAGES[0] in error.message


def test_missing_image_is_kept_without_the_image_check(pad: Callable[..., Path], tmp_path: Path) -> None:
    folder = pad()
    (folder / "images" / PAD_IMAGES[0]).unlink()
    assert run_import("pad-ufes-20", folder, tmp_path / "out", check_images=False).cases == 2


# -- source-specific layouts --------------------------------------------------------------------

ISIC_HEADER = "image,MEL,NV,BCC,AK,BKL,DF,VASC,SCC,UNK\n"


@pytest.mark.parametrize(("source", "name", "text", "row", "field", "expected"), [
    ("isic", "gt.csv", ISIC_HEADER + "ISIC_1,0,0,0,0,0,0,0,0,0\n", 1, "MEL,NV,BCC,AK,BKL,DF,VASC,SCC,UNK",
     "found none"),
    ("isic", "gt.csv", ISIC_HEADER + "ISIC_1,1.0,0,0,0,0,0,0,0,0\nISIC_2,1,1,0,0,0,0,0,0,0\n", 2, "MEL,NV",
     "found MEL, NV"),
    ("isic", "gt.csv", ISIC_HEADER + "ISIC_1,0.5,0.5,0,0,0,0,0,0,0\n", 1, "MEL", "0 or 1"),
    ("isic", "gt.csv", "image,MELL,NV\nISIC_1,1,0\n", None, "MELL", "did you mean 'MEL'"),
    ("fitzpatrick17k", "fitzpatrick17k.csv",
     ("md5hash,fitzpatrick_scale,fitzpatrick_centaur,label,nine_partition_label,three_partition_label,qc,url,"
     "url_alphanum\nabc,7,2,melanoma,x,y,,u,v\n"), 1, "fitzpatrick_scale", "outside"),
    ("ddi", "ddi_metadata.csv", "DDI_ID,DDI_file,skin_tone,malignant,disease\n1,000001.png,45,True,melanoma\n", 1,
     "skin_tone", "'45'"),
    ("ddi", "ddi_metadata.csv", "DDI_ID,DDI_file,skin_tone,malignant,disease\n1,000001.png,12,perhaps,melanoma\n", 1,
     "malignant", "yes/no"),
])
def test_source_specific_errors(tmp_path: Path, source: str, name: str, text: str, row: int | None, field: str,
                                expected: str) -> None:
    (tmp_path / name).write_text(text)
    error = import_error(tmp_path / name, tmp_path / "out", source=source, check_images=False)
    assert located(error) == (name, row, field)
    assert expected in error.message


def test_isic_metadata_errors_name_the_metadata_file(tmp_path: Path) -> None:
    (tmp_path / "gt.csv").write_text(ISIC_HEADER + "ISIC_1,1,0,0,0,0,0,0,0,0\n")
    (tmp_path / "meta.csv").write_text("image,age_approx,anatom_site_general,lesion_id,sex\nISIC_1,old,,,\n")
    error = import_error(tmp_path / "gt.csv", tmp_path / "out", source="isic", check_images=False,
                         options={"metadata": str(tmp_path / "meta.csv")})
    assert located(error) == ("meta.csv", 1, "age_approx")


# -- --on-error skip and atomic output ----------------------------------------------------------

def test_skip_reports_bad_rows_and_writes_good_ones(pad: Callable[..., Path], tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    bad_age = PAD_ROWS[1].replace(",40,", ",forty,")
    no_image = PAD_ROWS[1].replace("PAT_2,22,", "PAT_3,33,").replace("PAT_2_22_2", "PAT_3_33_3")  # never written
    folder = pad(rows=[PAD_ROWS[0], bad_age, no_image])
    out = tmp_path / "out"
    assert main(["data", "import", "pad-ufes-20", str(folder), "--out", str(out), "--on-error", "skip", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rejected"] == 2
    assert [case.case_id for case in read_cases(out)] == ["pad-ufes-20:PAT_1_11_1"]
    report = json.loads((out / REPORT_FILE).read_text())
    csv_path = str(folder / "metadata.csv")
    assert [(r["file"], r["row"], r["field"]) for r in report] == [(csv_path, 2, "age"), (csv_path, 3, "img_id")]
    assert "PAT_3_33_3.png" in report[1]["message"]


def test_failed_import_leaves_existing_table_untouched(pad: Callable[..., Path], tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "tables" / "pad"
    run_import("pad-ufes-20", pad(), out)
    before = {name: (out / name).read_bytes() for name in (TABLE_FILE, MANIFEST_FILE)}
    pad((",61,", ",sixty,"))
    assert main(["data", "import", "pad-ufes-20", str(tmp_path / "pad"), "--out", str(out)]) == 2
    assert "row 1, field 'age'" in capsys.readouterr().err
    assert {name: (out / name).read_bytes() for name in (TABLE_FILE, MANIFEST_FILE)} == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["pad"]  # no temporary directories left behind


def test_failed_import_creates_no_output(pad: Callable[..., Path], tmp_path: Path) -> None:
    folder = pad((",NEV,", ",???,"))
    assert main(["data", "import", "pad-ufes-20", str(folder), "--out", str(tmp_path / "new" / "out")]) == 2
    assert not (tmp_path / "new").exists()


def test_path_not_found(tmp_path: Path) -> None:
    error = import_error(tmp_path / "absent", tmp_path / "out")
    assert located(error) == ("absent", None, None)


def test_folder_without_the_expected_csv(tmp_path: Path) -> None:
    (tmp_path / "release").mkdir()
    error = import_error(tmp_path / "release", tmp_path / "out")
    assert located(error) == ("release", None, None)
    assert "metadata.csv" in error.message


def test_folder_with_several_csvs_is_ambiguous(tmp_path: Path) -> None:
    for name in ("train.csv", "test.csv"):
        (tmp_path / name).write_text(ISIC_HEADER)
    error = import_error(tmp_path, tmp_path / "out", source="isic")
    assert located(error) == (tmp_path.name, None, None)
    assert "test.csv, train.csv" in error.message
