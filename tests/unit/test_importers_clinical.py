"""PAD-UFES-20, ISIC, Fitzpatrick 17k, DDI and HAM10000 importers on small hand-written releases."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from dermkit.cli import main
from dermkit.data.importers import run_import
from dermkit.data.table import read_cases, read_manifest
from dermkit.ontology import default_ontology

PAD_CSV = """\
patient_id,lesion_id,smoke,drink,background_father,background_mother,age,pesticide,gender,skin_cancer_history,cancer_history,has_piped_water,has_sewage_system,fitspatrick,region,diameter_1,diameter_2,diagnostic,itch,grew,hurt,changed,bleed,elevation,img_id,biopsed
PAT_46,881,False,False,POMERANIA,GERMANY,55,False,FEMALE,True,True,True,False,3.0,NECK,6.0,5.0,BCC,True,True,False,True,False,True,PAT_46_881_939.png,True
PAT_1516,1765,,,,,8,,,,,,,,ARM,,,NEV,False,False,False,False,False,False,PAT_1516_1765_530.png,False
PAT_9,1765,,,UNK,,70,,MALE,,,,,,FACE,,,MEL,UNK,UNK,,UNK,,,PAT_9_1765_1.png,True
"""

ISIC_2019_CSV = """\
image,MEL,NV,BCC,AK,BKL,DF,VASC,SCC,UNK
ISIC_0000000,0.0,1.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0
ISIC_0000002,1.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0
ISIC_0000003,0.0,0.0,0.0,1.0,0.0,0.0,0.0,0.0,0.0
"""

ISIC_2019_METADATA = """\
image,age_approx,anatom_site_general,lesion_id,sex
ISIC_0000000,55.0,anterior torso,,female
ISIC_0000002,30.0,upper extremity,BCN_0000001,male
"""

ISIC_2018_CSV = """\
image,MEL,NV,BCC,AKIEC,BKL,DF,VASC
ISIC_0024306,0,0,0,1,0,0,0
ISIC_0024307,0,0,0,0,1,0,0
"""

FITZ_CSV = """\
md5hash,fitzpatrick_scale,fitzpatrick_centaur,label,nine_partition_label,three_partition_label,qc,url,url_alphanum
5e82a45bc5d78bd24ae9202d194423f8,3,2,melanoma,malignant melanoma,malignant,,https://example.org/a.jpg,httpsexampleorgajpg.jpg
fa2911a9b13b6f8af79cb700937cc14f,-1,-1,basal cell carcinoma,malignant epidermal,malignant,1 Diagnostic,https://example.org/b.jpg,httpsexampleorgbjpg.jpg
"""

DDI_CSV = """\
,DDI_ID,DDI_file,skin_tone,malignant,disease
0,1,000001.png,56,True,melanoma-in-situ
1,2,000002.png,12,False,seborrheic-keratosis-irritated
"""

HAM_CSV = """\
lesion_id,image_id,dx,dx_type,age,sex,localization
HAM_0000118,ISIC_0027419,bkl,histo,80.0,male,scalp
HAM_0002730,ISIC_0025030,nv,follow_up,,unknown,back
"""


def write_release(folder: Path, files: dict[str, str], images: list[str], make_image: Callable[..., Path]) -> Path:
    """Lay out a release: CSV files at ``folder`` and tiny images at the given relative paths."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    for image in images:
        make_image(image, folder=folder)
    return folder


@pytest.fixture
def pad_release(tmp_path: Path, make_image: Callable[..., Path]) -> Path:
    images = ["images/PAT_46_881_939.png", "images/PAT_1516_1765_530.png", "images/PAT_9_1765_1.png"]
    return write_release(tmp_path / "pad", {"metadata.csv": PAD_CSV}, images, make_image)


@pytest.fixture
def isic_release(tmp_path: Path, make_image: Callable[..., Path]) -> Path:
    files = {"ISIC_2019_Training_GroundTruth.csv": ISIC_2019_CSV}
    images = ["ISIC_0000000.jpg", "ISIC_0000002.png", "ISIC_0000003.jpg"]
    return write_release(tmp_path / "isic", files, images, make_image)


@pytest.fixture
def fitz_release(tmp_path: Path, make_image: Callable[..., Path]) -> Path:
    images = ["images/5e82a45bc5d78bd24ae9202d194423f8.jpg", "images/fa2911a9b13b6f8af79cb700937cc14f.jpg"]
    return write_release(tmp_path / "fitz", {"fitzpatrick17k.csv": FITZ_CSV}, images, make_image)


@pytest.fixture
def ddi_release(tmp_path: Path, make_image: Callable[..., Path]) -> Path:
    return write_release(tmp_path / "ddi", {"ddi_metadata.csv": DDI_CSV}, ["images/000001.png", "images/000002.png"],
                         make_image)


@pytest.fixture
def ham_release(tmp_path: Path, make_image: Callable[..., Path]) -> Path:
    images = ["images/ISIC_0027419.jpg", "images/ISIC_0025030.jpg"]
    return write_release(tmp_path / "ham", {"HAM10000_metadata.csv": HAM_CSV}, images, make_image)


def by_id(out: Path) -> dict:
    return {case.case_id: case for case in read_cases(out)}


# -- PAD-UFES-20 --------------------------------------------------------------------------------

def test_pad_ufes_20_fields(pad_release: Path, tmp_path: Path) -> None:
    cases = by_id(run_import("pad-ufes-20", pad_release, tmp_path / "out").out_dir)
    full = cases["pad-ufes-20:PAT_46_881_939"]
    assert full.image_paths == [str((pad_release / "images" / "PAT_46_881_939.png").resolve())]
    assert (full.patient_id, full.lesion_id) == ("PAT_46", "PAT_46_881")
    assert (full.age, full.sex, full.fitzpatrick, full.body_site) == (55.0, "female", 3, "neck")
    assert full.diagnosis == "BCC"
    assert full.diagnosis_id == "basal_cell_carcinoma"
    assert full.differential == {"basal_cell_carcinoma": 1.0}
    assert full.history == {
        "smoke": False, "drink": False, "pesticide": False, "skin_cancer_history": True, "cancer_history": True,
        "has_piped_water": True, "has_sewage_system": False, "itch": True, "grew": True, "hurt": False,
        "changed": True, "bleed": False, "elevation": True,
    }
    symptoms = default_ontology().symptoms
    assert full.symptoms == [symptoms.get(term).id for term in ("itch", "grew", "changed", "elevation")]
    assert full.measurements == {"diameter_1_mm": 6.0, "diameter_2_mm": 5.0}
    # Biopsy is how the label was confirmed, not history: every cancer is biopsied, so it stays out of
    # the fields a model reads.
    assert full.extra == {"background_father": "POMERANIA", "background_mother": "GERMANY", "biopsed": True}
    assert (full.acquisition, full.licence, full.source) == ("clinical", "CC BY 4.0", "pad-ufes-20")


def test_pad_ufes_20_gaps_stay_null(pad_release: Path, tmp_path: Path) -> None:
    cases = by_id(run_import("pad-ufes-20", pad_release, tmp_path / "out").out_dir)
    sparse = cases["pad-ufes-20:PAT_1516_1765_530"]
    assert (sparse.sex, sparse.fitzpatrick, sparse.measurements, sparse.extra) == (None, None, None, {"biopsed": False})
    assert sparse.symptoms == []  # asked, none present: not the same as not asked
    assert set(sparse.history) == {"itch", "grew", "hurt", "changed", "bleed", "elevation"}
    unasked = cases["pad-ufes-20:PAT_9_1765_1"]
    assert unasked.symptoms is None  # UNK and empty: nothing recorded
    assert unasked.history is None
    assert unasked.extra == {"biopsed": True}  # background "UNK" is missing, not a country
    # The same lesion number under two patients must not become one lesion.
    assert sparse.lesion_id != unasked.lesion_id


# -- ISIC ---------------------------------------------------------------------------------------

def test_isic_2019_with_metadata(isic_release: Path, tmp_path: Path) -> None:
    (tmp_path / "meta.csv").write_text(ISIC_2019_METADATA)
    result = run_import("isic", isic_release, tmp_path / "out", options={"metadata": str(tmp_path / "meta.csv")})
    cases = by_id(result.out_dir)
    assert [c.diagnosis for c in cases.values()] == ["NV", "MEL", "AK"]
    nevus = cases["isic:ISIC_0000000"]
    assert (nevus.diagnosis_id, nevus.differential) == ("melanocytic_nevus", {"melanocytic_nevus": 1.0})
    assert (nevus.age, nevus.sex, nevus.lesion_id) == (55.0, "female", None)
    assert nevus.body_site == default_ontology().body_sites.get("anterior torso").id
    melanoma = cases["isic:ISIC_0000002"]
    assert melanoma.image_paths == [str((isic_release / "ISIC_0000002.png").resolve())]
    assert (melanoma.lesion_id, melanoma.sex) == ("BCN_0000001", "male")
    no_metadata = cases["isic:ISIC_0000003"]
    assert (no_metadata.diagnosis_id, no_metadata.age, no_metadata.body_site) == ("actinic_keratosis", None, None)
    assert (no_metadata.acquisition, no_metadata.source) == ("dermoscopic", "isic")


ISIC_SITES = ("anterior torso", "posterior torso", "lateral torso", "upper extremity", "lower extremity", "head/neck",
              "palms/soles", "oral/genital")


def test_isic_every_anatomic_site_resolves(tmp_path: Path) -> None:
    """All ``anatom_site_general`` values of the ISIC 2019/2020 metadata land on a body site."""
    images = [f"ISIC_{n:07d}" for n in range(len(ISIC_SITES))]
    (tmp_path / "gt.csv").write_text("image,MEL,NV\n" + "".join(f"{image},1,0\n" for image in images))
    (tmp_path / "meta.csv").write_text("image,age_approx,anatom_site_general,lesion_id,sex\n"
                                       + "".join(f"{i},,{site},,\n" for i, site in zip(images, ISIC_SITES)))
    out = run_import("isic", tmp_path / "gt.csv", tmp_path / "out", check_images=False,
                     options={"metadata": str(tmp_path / "meta.csv")}).out_dir
    sites = {case.case_id: case.body_site for case in read_cases(out)}
    assert all(sites.values()) and len(set(sites.values())) == len(ISIC_SITES)


def test_isic_2018_codes_agree_with_ham10000(tmp_path: Path, make_image: Callable[..., Path]) -> None:
    """ISIC 2018 task 3 is HAM10000: its class codes must land on the same condition ids."""
    csv_path = tmp_path / "gt.csv"
    csv_path.write_text(ISIC_2018_CSV)
    make_image("ISIC_0024306.jpg", folder=tmp_path / "imgs")
    make_image("ISIC_0024307.jpg", folder=tmp_path / "imgs")
    cases = by_id(run_import("isic", csv_path, tmp_path / "out", options={"images": str(tmp_path / "imgs")}).out_dir)
    ontology = default_ontology()
    assert cases["isic:ISIC_0024306"].diagnosis_id == ontology.map_label("ham10000", "akiec")
    assert cases["isic:ISIC_0024307"].diagnosis_id == ontology.map_label("ham10000", "bkl")
    for code in ("MEL", "NV", "BCC", "DF", "VASC"):
        assert ontology.map_label("isic", code) == ontology.map_label("ham10000", code.lower())


# -- Fitzpatrick 17k ----------------------------------------------------------------------------

def test_fitzpatrick17k_fields(fitz_release: Path, tmp_path: Path) -> None:
    cases = by_id(run_import("fitzpatrick17k", fitz_release, tmp_path / "out").out_dir)
    typed = cases["fitzpatrick17k:5e82a45bc5d78bd24ae9202d194423f8"]
    assert (typed.fitzpatrick, typed.diagnosis, typed.diagnosis_id) == (3, "melanoma", "melanoma")
    assert typed.differential == {"melanoma": 1.0}
    assert typed.extra == {
        "fitzpatrick_centaur": 2, "nine_partition_label": "malignant melanoma", "three_partition_label": "malignant",
        "qc": None, "url": "https://example.org/a.jpg", "url_alphanum": "httpsexampleorgajpg.jpg",
    }
    unknown = cases["fitzpatrick17k:fa2911a9b13b6f8af79cb700937cc14f"]
    assert (unknown.fitzpatrick, unknown.extra["fitzpatrick_centaur"]) == (None, None)  # -1 means unknown
    assert unknown.extra["qc"] == "1 Diagnostic"
    assert (unknown.acquisition, unknown.licence) == ("clinical", "CC BY-NC-SA 3.0")


def test_fitzpatrick17k_without_images_keeps_expected_paths(tmp_path: Path) -> None:
    """The real release has no images: with the image check off, labels import and paths wait for a download."""
    (tmp_path / "fitzpatrick17k.csv").write_text(FITZ_CSV)
    out = run_import("fitzpatrick17k", tmp_path, tmp_path / "out", check_images=False,
                     options={"images": str(tmp_path / "later")}).out_dir
    paths = sorted(path for case in read_cases(out) for path in case.image_paths)
    assert paths == [str((tmp_path / "later" / f"{h}.jpg").resolve())
                     for h in ("5e82a45bc5d78bd24ae9202d194423f8", "fa2911a9b13b6f8af79cb700937cc14f")]


# -- DDI ----------------------------------------------------------------------------------------

def test_ddi_fields(ddi_release: Path, tmp_path: Path) -> None:
    cases = by_id(run_import("ddi", ddi_release, tmp_path / "out").out_dir)
    dark = cases["ddi:1"]
    assert dark.image_paths == [str((ddi_release / "images" / "000001.png").resolve())]
    ontology = default_ontology()
    assert dark.diagnosis == "melanoma-in-situ"
    assert dark.diagnosis_id == ontology.conditions.get("melanoma in situ").id
    assert dark.differential == {dark.diagnosis_id: 1.0}
    assert dark.fitzpatrick is None  # a pair of types is not one type
    assert dark.extra == {"fitzpatrick_group": "V-VI", "malignant": True}
    light = cases["ddi:2"]
    assert ontology.conditions.get("seborrheic keratosis") in ontology.conditions.path(light.diagnosis_id)
    assert light.extra == {"fitzpatrick_group": "I-II", "malignant": False}
    assert light.licence == "Stanford DDI research use agreement"


def test_ddi_images_beside_the_csv(tmp_path: Path, make_image: Callable[..., Path]) -> None:
    """The Stanford AIMI download keeps the PNGs beside ``ddi_metadata.csv`` (no ``images/``)."""
    write_release(tmp_path / "ddi", {"ddi_metadata.csv": DDI_CSV}, ["000001.png", "000002.png"], make_image)
    cases = by_id(run_import("ddi", tmp_path / "ddi" / "ddi_metadata.csv", tmp_path / "out").out_dir)
    assert cases["ddi:2"].image_paths == [str((tmp_path / "ddi" / "000002.png").resolve())]


# -- HAM10000 -----------------------------------------------------------------------------------

def test_ham10000_fields(ham_release: Path, tmp_path: Path) -> None:
    cases = by_id(run_import("ham10000", ham_release, tmp_path / "out").out_dir)
    keratosis = cases["ham10000:ISIC_0027419"]
    ontology = default_ontology()
    assert keratosis.diagnosis_id == ontology.map_label("ham10000", "bkl")
    assert (keratosis.age, keratosis.sex, keratosis.body_site) == (80.0, "male", "scalp")
    assert (keratosis.lesion_id, keratosis.extra) == ("HAM_0000118", {"dx_type": "histo"})
    nevus = cases["ham10000:ISIC_0025030"]
    assert (nevus.age, nevus.sex, nevus.diagnosis_id) == (None, None, "melanocytic_nevus")
    assert nevus.acquisition == "dermoscopic"


# -- the same imports through the CLI -----------------------------------------------------------

@pytest.mark.parametrize(("source", "release", "cases"), [
    ("pad-ufes-20", "pad_release", 3),
    ("isic", "isic_release", 3),
    ("fitzpatrick17k", "fitz_release", 2),
    ("ddi", "ddi_release", 2),
    ("ham10000", "ham_release", 2),
])
def test_cli_import(source: str, release: str, cases: int, request: pytest.FixtureRequest, tmp_path: Path,
                    capsys: pytest.CaptureFixture[str]) -> None:
    path = request.getfixturevalue(release)
    out = tmp_path / "table"
    assert main(["data", "import", source, str(path), "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary == {"out": str(out), "cases": cases, "rejected": 0}
    assert len(read_cases(out)) == cases
    assert read_manifest(out)["source"] == source
