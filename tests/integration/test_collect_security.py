"""Roles on every route, CSRF on every form, upload limits, errors without traces (login and rate limits:
test_collect_limits.py)."""

from __future__ import annotations

import html
from pathlib import Path

import pytest
import test_collect_fixtures as fixtures
from sqlalchemy import select
from test_collect_fixtures import (
    PASSWORD,
    Platform,
    contribute,
    grade_dermatologist,
    make_platform,
    photo,
    take_next,
    token,
)

from dermkit.collect.grading import GradesNeeded
from dermkit.collect.models import CaseImage, GradeRecord

# The shared fixtures, under the names tests ask for.
db_url = fixtures.db_url
platform = fixtures.platform
postgres_server = fixtures.postgres_server
sqlite_platform = fixtures.sqlite_platform


def test_every_route_admits_only_its_roles(platform: Platform) -> None:
    receipt_a = contribute(platform.anonymous, [photo(1), photo(2)], age_group="AGE_30_TO_39")
    contribute(platform.anonymous, [photo(3)], age_group="AGE_60_TO_69")
    derm = platform.signed_in("derm", "dermatologist")
    other_derm = platform.signed_in("derm2", "dermatologist")
    lay = platform.signed_in("lay", "lay_grader")
    admin = platform.signed_in("admin", "admin")
    derm_grade, derm_case = take_next(derm)  # type: ignore[misc]
    assert grade_dermatologist(derm, derm_grade, [("Psoriasis", 4)], 3).status_code == 303
    open_derm_grade, _ = take_next(derm)  # type: ignore[misc]
    lay_grade, lay_case = take_next(lay)  # type: ignore[misc]
    assert lay_case == derm_case  # both queues serve the oldest case first
    with platform.app.state.sessions() as session:
        image_of = {row.case_id: row.id for row in session.execute(select(CaseImage.case_id, CaseImage.id))}
        other_case = next(c for c in image_of if c != derm_case)
        assert session.get(GradeRecord, open_derm_grade).case_id == other_case

    anonymous = platform.client()
    routes = {
        # (method, path): roles that may use it
        ("GET", "/grade"): {"dermatologist", "lay_grader"},
        ("GET", f"/grade/{open_derm_grade}"): {"dermatologist"},  # only its own grader
        ("GET", f"/grade/{lay_grade}"): {"lay_grader"},
        # Photos: graders assigned to the case, and admins.
        ("GET", f"/media/{image_of[derm_case]}"): {"dermatologist", "lay_grader", "admin"},
        ("GET", f"/media/{image_of[other_case]}"): {"dermatologist", "admin"},
        ("GET", "/api/conditions?q=ecz"): {"dermatologist", "admin"},
        ("GET", "/admin"): {"admin"},
        ("GET", "/admin/cases"): {"admin"},
        ("GET", "/admin/plots/submissions.png"): {"admin"},
        ("GET", "/admin/export?format=scin"): {"admin"},
    }
    clients = {"anonymous": anonymous, "dermatologist": derm, "lay_grader": lay, "admin": admin}
    for (method, path), allowed in routes.items():
        for role, client in clients.items():
            status = client.request(method, path).status_code
            if role in allowed:
                assert status == 200, (role, path, status)
            else:
                assert status in ((401,) if role == "anonymous" else (403, 404)), (role, path, status)
    # Another dermatologist sees neither the first one's assignment nor the case's photos.
    assert other_derm.get(f"/grade/{open_derm_grade}").status_code == 404
    assert other_derm.get(f"/media/{image_of[derm_case]}").status_code == 404
    # Form POSTs: graders cannot add accounts; lay graders cannot submit someone else's grade.
    for role in ("dermatologist", "lay_grader"):
        client = clients[role]
        response = client.post("/admin/users", data={"csrf_token": token(client, "/grade"), "username": "x",
                                                    "password": PASSWORD, "role": "admin"})
        assert response.status_code == 403
    assert lay.post(f"/grade/{open_derm_grade}", data={"csrf_token": token(lay, "/grade"), "monk": "3"}).status_code == 404
    # A lay grader's page shows the photos and the Monk scale, never a dermatologist's grade.
    lay_page = lay.get(f"/grade/{lay_grade}").text
    assert "Psoriasis" not in lay_page and "Fitzpatrick" not in lay_page and "monk-10" in lay_page

    # A contributor sees only the case of their own receipt, and no one's photos.
    status = anonymous.post("/status", data={"csrf_token": token(anonymous, "/status"), "receipt": receipt_a})
    assert status.status_code == 200 and "<dd>2</dd>" in status.text
    wrong = anonymous.post("/status", data={"csrf_token": token(anonymous, "/status"), "receipt": "guess"})
    assert wrong.status_code == 404


def test_forms_need_the_right_csrf_token(sqlite_platform: Platform) -> None:
    client = sqlite_platform.client()
    token(client, "/contribute")  # sets the anonymous CSRF cookie
    for data in ({}, {"csrf_token": "forged"}):
        response = client.post("/contribute", data={**data, "consent": "yes"}, files={"image_1": ("a.png", photo(1))})
        assert response.status_code == 403
        assert "reload the page" in response.text
    derm = sqlite_platform.signed_in("derm", "dermatologist")
    anonymous_token = token(client, "/login")
    # A signed-in user's form needs the session's token, not any cookie-bound one.
    assert derm.post("/grade/next", data={"csrf_token": anonymous_token}).status_code == 403
    assert derm.post("/logout", data={"csrf_token": anonymous_token}).status_code == 403


def test_contribution_is_validated_field_by_field(sqlite_platform: Platform) -> None:
    from dermkit.collect.questionnaire import CONSENT_VERSION

    client = sqlite_platform.client()

    def post(files: dict, **data: object):
        form = {"csrf_token": token(client, "/contribute"), "consent": "yes", "consent_version": CONSENT_VERSION}
        return client.post("/contribute", data={**form, **data}, files=files)

    good = {"image_1": ("a.png", photo(1))}
    cases = [
        (post(good, consent="no"), "'consent'"),
        (post(good, consent_version="2001-old"), "'consent_version'"),
        (post(good, age_group="AGE_12"), "'age_group'"),
        (post(good, condition_symptoms=["itching", "no_relevant_experience"]), "'condition_symptoms'"),
        (post({"image_1": ("a.txt", b"not an image at all")}), "'image_1'"),
        (post({"image_1": ("a.gif", photo(1, fmt="GIF"))}), "GIF"),
        (post({"image_1": ("a.png", photo(1)), "image_2": ("b.png", photo(2, size=64))}), "'image_2'"),
    ]
    for response, named in cases:
        assert response.status_code == 400, response.text
        assert named in html.unescape(response.text)
    assert post({}).status_code == 400
    with sqlite_platform.app.state.sessions() as session:
        assert session.scalars(select(CaseImage)).all() == []
    assert list(sqlite_platform.media.iterdir()) == []  # refused uploads leave no file


def test_request_size_is_limited(tmp_path: Path) -> None:
    with make_platform(f"sqlite:///{tmp_path / 'c.db'}", tmp_path / "media", GradesNeeded(1, 1),
                       max_request_bytes=100_000) as limited:
        client = limited.client()
        response = client.post("/contribute", data={"csrf_token": token(client, "/contribute")},
                               files={"image_1": ("a.png", b"x" * 200_000)})
        assert response.status_code == 413
        # Chunked bodies (no Content-Length) are counted while they stream.
        chunks = iter([b"y" * 60_000, b"y" * 60_000])
        streamed = client.post("/login", content=chunks,
                               headers={"content-type": "application/x-www-form-urlencoded"})
        assert streamed.status_code == 413


def test_errors_never_show_a_stack_trace(sqlite_platform: Platform, monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi.testclient import TestClient

    import dermkit.collect.routes.admin as admin_routes

    def broken(*_: object) -> None:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(admin_routes, "plot", broken)
    admin = sqlite_platform.signed_in("admin", "admin")
    client = TestClient(sqlite_platform.app, base_url="http://127.0.0.1", raise_server_exceptions=False,
                        cookies=admin.cookies)
    response = client.get("/admin/plots/submissions.png")
    assert response.status_code == 500
    assert "secret internal detail" not in response.text and "Traceback" not in response.text
    assert client.get("/grade/not-a-number").status_code in (400, 403)
    page = client.get("/")
    assert page.headers["x-frame-options"] == "DENY" and "default-src 'self'" in page.headers["content-security-policy"]
