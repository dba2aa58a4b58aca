"""Graders' pages: the queue, the assignment forms, the case images and the condition search."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException

from dermkit.collect.auth import SignedIn
from dermkit.collect.grading import (
    assignment,
    next_assignment,
    parse_dermatologist_answer,
    parse_monk,
    queue_length,
    submit_dermatologist,
    submit_lay,
)
from dermkit.collect.models import ROLES, CaseImage, GradeRecord
from dermkit.collect.parsing import row_id
from dermkit.collect.routes.deps import CSRF, DB, Config, Form, Grader, Store, allow, form_text, render, see_other
from dermkit.collect.search import search_conditions

router = APIRouter()


@router.get("/grade", response_class=HTMLResponse)
def queue(request: Request, session: DB, viewer: Grader, settings: Config) -> Response:
    waiting = queue_length(session, viewer.user_id, viewer.role, settings.needed)
    return render(request, "queue.html", viewer, waiting=waiting)


@router.post("/grade/next", dependencies=[CSRF])
def take_next(request: Request, session: DB, viewer: Grader, settings: Config) -> Response:
    record = next_assignment(session, viewer.user_id, viewer.role, settings.needed)
    if record is None:
        return render(request, "queue.html", viewer, waiting=0, empty=True)
    return see_other(f"/grade/{record.id}")


def _own_assignment(session: Session, grade_id: str, viewer: SignedIn) -> GradeRecord:
    number = row_id(grade_id)
    record = None if number is None else assignment(session, number, viewer.user_id)
    if record is None:
        raise HTTPException(404, "no open assignment of yours has this number")
    return record


@router.get("/grade/{grade_id}", response_class=HTMLResponse)
def grade_form(request: Request, grade_id: str, session: DB, viewer: Grader) -> Response:
    record = _own_assignment(session, grade_id, viewer)
    template = "grade_dermatologist.html" if record.kind == "dermatologist" else "grade_lay.html"
    return render(request, template, viewer, record=record, images=record.case.images)


@router.post("/grade/{grade_id}", dependencies=[CSRF])
def grade(request: Request, grade_id: str, form: Form, session: DB, viewer: Grader) -> Response:
    record = _own_assignment(session, grade_id, viewer)
    if record.kind == "dermatologist":
        slots = range(1, 4)
        answer = parse_dermatologist_answer(
            form_text(form, "gradable"), [form_text(form, f"condition_{s}") for s in slots],
            [form_text(form, f"confidence_{s}") for s in slots], form_text(form, "fitzpatrick"))
        submit_dermatologist(session, record, answer)
    else:
        submit_lay(session, record, parse_monk(form_text(form, "monk")))
    return see_other("/grade")


@router.get("/media/{image_id}")
def media(image_id: str, session: DB, viewer: Annotated[SignedIn, Depends(allow(*ROLES))], store: Store) -> Response:
    # Admins see every image; a grader only those of cases assigned to them (others: 404, as if absent).
    number = row_id(image_id)
    image = None if number is None else session.get(CaseImage, number)
    if image is None:
        raise HTTPException(404, "no such image")
    if viewer.role != "admin":
        mine = session.scalar(select(GradeRecord.id).where(GradeRecord.case_id == image.case_id,
                                                          GradeRecord.grader_id == viewer.user_id))
        if mine is None:
            raise HTTPException(404, "no such image")
    return FileResponse(store.path(image.file_name), media_type="image/jpeg",
                        headers={"Cache-Control": "private, no-store"})


@router.get("/api/conditions")
def conditions(text: Annotated[str, Query(alias="q", max_length=100)],
               viewer: Annotated[SignedIn, Depends(allow("dermatologist", "admin"))]) -> JSONResponse:
    return JSONResponse(search_conditions(text))
