"""The whole collection flow on SQLite and on a real PostgreSQL server: contribute, grade, aggregate,
export (SCIN layout and case table), re-import with the ``scin`` importer, withdraw."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
import test_collect_fixtures as fixtures
from sqlalchemy import select
from test_collect_fixtures import (
    Platform,
    contribute,
    grade_dermatologist,
    grade_lay,
    photo,
    take_next,
    token,
)

from dermkit.cli import main
from dermkit.collect.models import CaseImage, ContributedCase
from dermkit.data.importers import run_import
from dermkit.data.table import read_cases, read_table

# The shared fixtures, under the names tests ask for.
db_url = fixtures.db_url
platform = fixtures.platform
postgres_server = fixtures.postgres_server

# Per case (in submission order): each dermatologist's conditions and eFST, each lay grader's tone.
DERMATOLOGISTS = {
    "d1": [([("Eczema", 5), ("Psoriasis", 3)], 3), ([("Acne", 4)], 5), ([], None), ([("Psoriasis", 5)], 2)],
    # d1 then d2 on case 0 is a boundary the flattened list cannot show (3 → 3, new names, two given).
    "d2": [([("Tinea", 3), ("Urticaria", 1)], 4), ([], None), ([], None), ([("Eczema", 5)], 2)],
    # Case 3: d1, d2 and d3 all rate one condition 5, so no order shows every boundary.
    "d3": [([("eczema", 4)], 3), ([], None), ([], None), ([("Tinea", 5), ("Acne", 2)], 1)],
}
LAY = {"l1": [4, 7, None, 2], "l2": [6, None, None, 3]}
EXPECTED = [
    # differential, eFST (lower median), Monk (lower median)
    ({"eczema": 0.5, "tinea": 0.25, "psoriasis": 0.125, "urticaria": 0.125}, 3, 4),
    ({"acne": 1.0}, 5, 7),
    (None, None, None),
    ({"acne": 0.5 / 3.5, "eczema": 1 / 3.5, "psoriasis": 1 / 3.5, "tinea": 1 / 3.5}, 2, 2),
]
ANSWERS = [
    {"age_group": "AGE_30_TO_39", "sex_at_birth": "FEMALE", "fitzpatrick_skin_type": "FST2",
     "race_ethnicity": ["asian", "white"], "body_parts": ["arm", "leg"], "textures": ["raised_or_bumpy"],
     "condition_symptoms": ["itching", "increasing_size"], "other_symptoms": ["fever"],
     "condition_duration": "ONE_TO_FOUR_WEEKS", "image_1_shot_type": "CLOSE_UP", "image_2_shot_type": "AT_DISTANCE"},
    {"age_group": "AGE_80_OR_ABOVE", "sex_at_birth": "MALE", "condition_symptoms": ["no_relevant_experience"]},
    {"age_group": "AGE_UNKNOWN", "sex_at_birth": "OTHER_OR_UNSPECIFIED", "fitzpatrick_skin_type": "NONE_SELECTED",
     "condition_duration": "UNKNOWN", "body_parts": ["other"]},
    {"race_ethnicity": ["black_or_african_american"], "body_parts": ["torso_back", "head_or_neck"]},
]
COMPARED = ("age", "sex", "fitzpatrick", "monk", "body_site", "symptoms", "duration", "diagnosis",
            "diagnosis_id")
COMPARED_EXTRA = ("age_group", "sex_at_birth", "self_reported_fitzpatrick", "body_sites", "textures",
                  "race_ethnicity", "combined_race", "shot_types")


def _collect(platform: Platform) -> tuple[list[str], list[str]]:
    """Contribute the four cases and grade them all; (case ids in order, receipts)."""
    receipts = [contribute(platform.anonymous, [photo(10 * n + k) for k in range(1 + (n == 0))], **answers)
                for n, answers in enumerate(ANSWERS)]
    with platform.app.state.sessions() as session:
        order = list(session.scalars(select(ContributedCase.id).order_by(ContributedCase.submitted_at,
                                                                          ContributedCase.id)))
    for name, answers in DERMATOLOGISTS.items():
        browser = platform.signed_in(name, "dermatologist")
        while (taken := take_next(browser)) is not None:
            grade_id, case_id = taken
            conditions, fitzpatrick = answers[order.index(case_id)]
            assert grade_dermatologist(browser, grade_id, conditions, fitzpatrick).status_code == 303
    for name, tones in LAY.items():
        browser = platform.signed_in(name, "lay_grader")
        while (taken := take_next(browser)) is not None:
            grade_id, case_id = taken
            assert grade_lay(browser, grade_id, tones[order.index(case_id)]).status_code == 303
    return order, receipts


def test_contribute_grade_export_and_reimport(platform: Platform, tmp_path: Path) -> None:
    order, receipts = _collect(platform)
    admin = platform.signed_in("admin", "admin")
    _check_dashboard(admin)

    # Every case got exactly three dermatologist and two lay grades: queues are empty.
    again = platform.signed_in("d4", "dermatologist")
    assert take_next(again) is None

    archive = admin.get("/admin/export?format=scin")
    assert archive.status_code == 200 and archive.headers["content-type"] == "application/zip"
    scin_dir = tmp_path / "scin"
    zipfile.ZipFile(io.BytesIO(archive.content)).extractall(scin_dir)
    assert sorted(p.name for p in scin_dir.iterdir()) == ["images", "scin_cases.csv", "scin_labels.csv"]

    url = platform.app.state.settings.db_url
    media = str(platform.media)
    assert main(["collect", "export", "--db", url, "--media", media, "--format", "dermkit",
                 "--out", str(tmp_path / "dermkit")]) == 0
    exported = {case.case_id.removeprefix("collect:"): case for case in read_cases(tmp_path / "dermkit" / "table")}
    assert list(exported) == order

    run_import("scin", scin_dir, tmp_path / "reimported")
    reimported = {case.case_id.removeprefix("scin:"): case for case in read_cases(tmp_path / "reimported")}
    assert sorted(reimported) == sorted(order)

    for position, case_id in enumerate(order):
        ours, theirs = exported[case_id], reimported[case_id]
        differential, fitzpatrick, monk = EXPECTED[position]
        assert (ours.differential is None) == (differential is None)
        if differential is not None:
            assert ours.differential == pytest.approx(differential, abs=1e-6)
            assert theirs.differential == pytest.approx(ours.differential, abs=1e-6)
        else:
            assert theirs.differential is None
        assert (ours.fitzpatrick, ours.monk) == (fitzpatrick, monk)
        for name in COMPARED:
            assert getattr(theirs, name) == getattr(ours, name), (case_id, name)
        for key in COMPARED_EXTRA:
            assert theirs.extra[key] == ours.extra[key], (case_id, key)
        assert [Path(p).read_bytes() for p in theirs.image_paths] == [Path(p).read_bytes() for p in ours.image_paths]
    first = exported[order[0]]
    assert (first.age, first.sex, first.body_site, first.symptoms) == (34.5, "female", "upper_extremity",
                                                                     ["growth", "itch", "fever"])
    assert first.extra["consent_version"] and first.diagnosis == "Eczema"
    assert exported[order[1]].symptoms == [] and exported[order[1]].age is None
    assert exported[order[2]].sex is None and exported[order[2]].duration is None

    # Withdrawal deletes the case, its files and its grades; later exports no longer hold it.
    withdrawn = order[1]
    with platform.app.state.sessions() as session:
        files = list(session.scalars(select(CaseImage.file_name).where(CaseImage.case_id == withdrawn)))
    client = platform.client()
    response = client.post("/withdraw", data={"csrf_token": token(client, "/status"), "receipt": receipts[1]})
    assert response.status_code == 200 and "deleted" in response.text
    assert files and not any((platform.media / name).exists() for name in files)
    assert client.post("/withdraw", data={"csrf_token": token(client, "/status"),
                                          "receipt": receipts[1]}).status_code == 404
    run_import("scin", _export_scin(admin, tmp_path / "scin2"), tmp_path / "reimported2")
    assert sorted(c.case_id for c in read_cases(tmp_path / "reimported2")) == sorted(
        f"scin:{c}" for c in order if c != withdrawn)
    table = read_table(tmp_path / "reimported2")
    assert len(table) == 3


def _export_scin(admin, folder: Path) -> Path:
    response = admin.get("/admin/export?format=scin")
    assert response.status_code == 200
    zipfile.ZipFile(io.BytesIO(response.content)).extractall(folder)
    return folder


def _check_dashboard(admin) -> None:
    page = admin.get("/admin")
    assert page.status_code == 200
    assert 'id="case-count">4<' in page.text
    # 12 dermatologist answers, 7 of them gradable.
    assert 'id="gradable-share">58%<' in page.text
    for name in ("submissions", "fitzpatrick", "monk", "grades", "confidence"):
        plot = admin.get(f"/admin/plots/{name}.png")
        assert plot.status_code == 200 and plot.content.startswith(b"\x89PNG"), name
    assert "Eczema 0.50" in admin.get("/admin/cases").text
