"""Contributors' pages: consent and upload, the receipt, status by receipt code, withdrawal."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from dermkit.collect import questionnaire as q
from dermkit.collect.contributions import (
    MAX_PHOTOS,
    Photo,
    check_consent,
    count_contribution,
    create_case,
    find_by_receipt,
    withdraw,
)
from dermkit.collect.quality import MAX_IMAGE_BYTES, check_upload
from dermkit.collect.routes.deps import (
    CSRF,
    DB,
    Config,
    Form,
    Slots,
    Store,
    Viewer,
    client_of,
    form_text,
    form_texts,
    render,
)
from dermkit.core.errors import InputError

router = APIRouter()


def _contribution_allowed(request: Request, session: DB, settings: Config) -> None:
    count_contribution(session, client_of(request), settings.contributions_per_hour)


@router.get("/", response_class=HTMLResponse)
def home(request: Request, viewer: Viewer) -> Response:
    return render(request, "home.html", viewer)


@router.get("/contribute", response_class=HTMLResponse)
def contribute_form(request: Request, viewer: Viewer) -> Response:
    return render(request, "contribute.html", viewer, consent_text=q.CONSENT_TEXT,
                  consent_version=q.CONSENT_VERSION, slots=range(1, MAX_PHOTOS + 1))


# Counted before the form is parsed: a refused client's photos are never read.
@router.post("/contribute", response_class=HTMLResponse, dependencies=[Depends(_contribution_allowed), CSRF])
def contribute(request: Request, form: Form, session: DB, viewer: Viewer, store: Store, check_slots: Slots
               ) -> Response:
    version = check_consent(form_text(form, "consent") == "yes", form_text(form, "consent_version"))
    answers = q.parse_answers({name: form_text(form, name) for name in q.SINGLE_CHOICES},
                              {name: form_texts(form, name) for name in q.MULTI_CHOICES})
    photos = []
    for slot in range(1, MAX_PHOTOS + 1):
        upload = form.get(f"image_{slot}")
        if not isinstance(upload, UploadFile) or not upload.filename:
            continue
        data = upload.file.read(MAX_IMAGE_BYTES + 1)
        with check_slots.slot():
            checked = check_upload(data, f"image_{slot}")
        photos.append(Photo(checked,
                            q.parse_shot_type(form_text(form, f"image_{slot}_shot_type"), f"image_{slot}_shot_type")))
    if not photos:
        raise InputError("add at least one photo", field="image_1")
    receipt = create_case(session, store, answers, photos, version)
    return render(request, "receipt.html", viewer, receipt=receipt, status=201)


@router.get("/status", response_class=HTMLResponse)
def status_form(request: Request, viewer: Viewer) -> Response:
    return render(request, "status.html", viewer, case=None)


@router.post("/status", response_class=HTMLResponse, dependencies=[CSRF])
def status(request: Request, form: Form, session: DB, viewer: Viewer) -> Response:
    code = form_text(form, "receipt") or ""
    case = find_by_receipt(session, code)
    if case is None:
        raise HTTPException(404, "no contribution has this receipt code")
    return render(request, "status.html", viewer, case=case, receipt=code,
                  graded=sum(g.submitted_at is not None for g in case.grades))


@router.post("/withdraw", response_class=HTMLResponse, dependencies=[CSRF])
def withdraw_case(request: Request, form: Form, session: DB, viewer: Viewer, store: Store) -> Response:
    if not withdraw(session, store, form_text(form, "receipt") or ""):
        raise HTTPException(404, "no contribution has this receipt code")
    return render(request, "withdrawn.html", viewer)
