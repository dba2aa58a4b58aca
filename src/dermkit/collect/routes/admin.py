"""Admins' pages: the dashboard and its plots, the case list, new accounts, the SCIN download."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException

from dermkit.collect.auth import create_user
from dermkit.collect.dashboard import PLOTS, plot, summarize
from dermkit.collect.export import export
from dermkit.collect.labels import case_labels
from dermkit.collect.models import ROLES, ContributedCase, GradeRecord
from dermkit.collect.routes.deps import CSRF, DB, Admin, Form, Store, form_text, render, see_other
from dermkit.core.errors import InputError
from dermkit.ontology import default_ontology

router = APIRouter()


@router.get("/admin", response_class=HTMLResponse)
def dashboard(request: Request, session: DB, viewer: Admin) -> Response:
    return render(request, "dashboard.html", viewer, summary=summarize(session), plots=PLOTS, roles=ROLES)


@router.get("/admin/plots/{name}.png")
def dashboard_plot(name: str, session: DB, viewer: Admin) -> Response:
    if name not in PLOTS:
        raise HTTPException(404, "no such plot")
    return Response(plot(summarize(session), name), media_type="image/png",
                    headers={"Cache-Control": "private, no-store"})


@router.get("/admin/cases", response_class=HTMLResponse)
def cases(request: Request, session: DB, viewer: Admin) -> Response:
    rows = session.scalars(select(ContributedCase).order_by(ContributedCase.submitted_at.desc()).options(
        selectinload(ContributedCase.images),
        selectinload(ContributedCase.grades).selectinload(GradeRecord.conditions))).all()
    return render(request, "cases.html", viewer, cases=[(case, case_labels(case)) for case in rows],
                  conditions=default_ontology().conditions)


@router.post("/admin/users", dependencies=[CSRF])
def add_user(request: Request, form: Form, session: DB, viewer: Admin) -> Response:
    create_user(session, form_text(form, "username") or "", form_text(form, "password") or "",
                form_text(form, "role") or "")
    return see_other("/admin")


@router.get("/admin/export")
def download(format: str, session: DB, viewer: Admin, store: Store) -> Response:
    # A case table names its images by absolute path, which a downloaded zip cannot keep.
    if format != "scin":
        raise InputError("the download is the SCIN layout (format=scin); write a case table on the server "
                         "with: dermkit collect export --format dermkit", field="format")
    workdir = Path(tempfile.mkdtemp(prefix="dermkit-export-"))
    try:
        export(session, store, format, workdir / "export")
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    archive = shutil.make_archive(str(workdir / f"dermkit-collect-{format}"), "zip", workdir / "export")
    return FileResponse(archive, media_type="application/zip", filename=Path(archive).name,
                        background=BackgroundTask(shutil.rmtree, workdir, ignore_errors=True))
