"""The web app: contributor, grader and admin pages (server-rendered Jinja2, no build step).

Every route states the roles it admits (``_allow``); every form POST checks a CSRF token (the
session's for signed-in users, a cookie-bound one for contributors); errors are rendered as short
pages without stack traces. Run it with ``dermkit collect serve`` (binds 127.0.0.1).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
)
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload, sessionmaker
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dermkit.collect import questionnaire as q
from dermkit.collect.auth import (
    LoginLimits,
    SignedIn,
    begin_sign_in,
    create_user,
    sign_in,
    sign_out,
    signed_in,
)
from dermkit.collect.clients import client_id, trusted_networks
from dermkit.collect.contributions import (
    MAX_PHOTOS,
    Photo,
    check_consent,
    count_contribution,
    create_case,
    find_by_receipt,
    sweep_media,
    withdraw,
)
from dermkit.collect.dashboard import PLOTS, plot, summarize
from dermkit.collect.db import DEFAULT_DB_URL, make_engine, upgrade
from dermkit.collect.export import export
from dermkit.collect.grading import (
    GradesNeeded,
    assignment,
    next_assignment,
    parse_dermatologist_answer,
    parse_monk,
    queue_length,
    submit_dermatologist,
    submit_lay,
)
from dermkit.collect.labels import case_labels
from dermkit.collect.models import ROLES, CaseImage, ContributedCase, GradeRecord
from dermkit.collect.parsing import ascii_digits, row_id
from dermkit.collect.quality import MAX_IMAGE_BYTES, Busy, CheckSlots, check_upload
from dermkit.collect.search import search_conditions
from dermkit.collect.security import new_token, same
from dermkit.collect.storage import MediaStore
from dermkit.collect.throttle import RateLimited
from dermkit.core.errors import InputError
from dermkit.core.memory import map_large_allocations
from dermkit.ontology import default_ontology

log = logging.getLogger("dermkit.collect")

HERE = Path(__file__).parent
SESSION_COOKIE = "dk_session"
CSRF_COOKIE = "dk_csrf"
CSRF_FIELD = "csrf_token"
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"), (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy",
     b"default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; frame-ancestors 'none'"),
]


@dataclass(frozen=True)
class Settings:
    db_url: str = DEFAULT_DB_URL
    media_dir: Path = Path("dermkit-collect-media")
    needed: GradesNeeded = field(default_factory=GradesNeeded)
    # Three photos at the per-photo limit plus the form's text.
    max_request_bytes: int = MAX_PHOTOS * MAX_IMAGE_BYTES + 1024 * 1024
    secure_cookies: bool = False  # set behind HTTPS
    login: LoginLimits = field(default_factory=LoginLimits)
    # Addresses or networks of reverse proxies whose X-Forwarded-For is believed (none by default).
    trusted_proxies: tuple[str, ...] = ()
    contributions_per_hour: int = 20  # per client; 0 turns the limit off
    # Photos decoded at once (each up to 40 MP: ~0.3 GB while checked); others wait, then get 503.
    max_concurrent_uploads: int = 2
    upload_wait_s: float = 30.0


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes (413): by Content-Length, and counted while streaming."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = ascii_digits(dict(scope["headers"]).get(b"content-length", b"0").decode("latin-1"))
        if declared is None or declared > self.limit:
            too_large = declared is not None
            await JSONResponse({"detail": "request body too large" if too_large else "bad Content-Length"},
                               status_code=413 if too_large else 400)(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise HTTPException(413, "request body too large")
            return message

        await self.app(scope, counted, send)


class SecurityHeaders:
    """Add :data:`SECURITY_HEADERS` to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers if scope["type"] == "http" else send)


# -- dependencies ---------------------------------------------------------------------------------

def _db(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as session:
        yield session


DB = Annotated[Session, Depends(_db)]


def _signed_in(request: Request, session: DB) -> SignedIn | None:
    return signed_in(session, request.cookies.get(SESSION_COOKIE))


Viewer = Annotated[SignedIn | None, Depends(_signed_in)]


def _allow(*roles: str) -> Callable[[SignedIn | None], SignedIn]:
    """A dependency admitting only signed-in users with one of ``roles`` (401 anonymous, 403 others)."""
    if not set(roles) <= set(ROLES):
        raise ValueError(f"unknown roles {set(roles) - set(ROLES)}")

    def check(viewer: Viewer) -> SignedIn:
        if viewer is None:
            raise HTTPException(401, "please sign in")
        if viewer.role not in roles:
            raise HTTPException(403, "your account cannot open this page")
        return viewer

    return check


Grader = Annotated[SignedIn, Depends(_allow("dermatologist", "lay_grader"))]
Admin = Annotated[SignedIn, Depends(_allow("admin"))]


async def _form(request: Request) -> FormData:
    return await request.form(max_files=MAX_PHOTOS, max_fields=200)


Form = Annotated[FormData, Depends(_form)]


def _csrf(request: Request, form: Form, viewer: Viewer) -> None:
    """Every POST: the form's token must equal the session's (signed in) or the cookie's (anonymous)."""
    expected = viewer.csrf_token if viewer else request.cookies.get(CSRF_COOKIE, "")
    given = form.get(CSRF_FIELD)
    if not isinstance(given, str) or not same(given, expected):
        raise HTTPException(403, "the form expired or was not sent from this site; reload the page and try again")


CSRF = Depends(_csrf)


def _text(form: FormData, name: str) -> str | None:
    value = form.get(name)
    if value is not None and not isinstance(value, str):
        raise InputError("expected text, got a file", field=name)
    return value


def _texts(form: FormData, name: str) -> list[str]:
    values = form.getlist(name)
    if any(not isinstance(v, str) for v in values):
        raise InputError("expected text, got a file", field=name)
    return [str(v) for v in values]


async def wait_before_checking(seconds: float) -> None:
    """The per-account sign-in delay; awaited, so a slowed sign-in holds no worker thread."""
    await asyncio.sleep(seconds)


# -- the app --------------------------------------------------------------------------------------

def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    map_large_allocations()  # decoded photos go back to the OS once freed
    engine = make_engine(settings.db_url)
    store = MediaStore(settings.media_dir)
    proxies = trusted_networks(settings.trusted_proxies)
    check_slots = CheckSlots(settings.max_concurrent_uploads, settings.upload_wait_s)
    templates = Jinja2Templates(directory=HERE / "templates")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        upgrade(engine)
        with app.state.sessions() as session:
            removed = sweep_media(session, store)
        if removed:
            log.warning("removed %d media files left by interrupted uploads or withdrawals", len(removed))
        yield
        engine.dispose()

    app = FastAPI(title="dermkit collect", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.sessions = sessionmaker(engine, expire_on_commit=False)
    app.state.settings = settings
    app.add_middleware(BodyLimit, limit=settings.max_request_bytes)
    app.add_middleware(SecurityHeaders)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    def render(request: Request, name: str, viewer: SignedIn | None, status: int = 200, **context: Any) -> Response:
        token = viewer.csrf_token if viewer else request.cookies.get(CSRF_COOKIE) or new_token()
        response = templates.TemplateResponse(request, name, {"viewer": viewer, "csrf_token": token, "q": q,
                                                              **context}, status_code=status)
        if viewer is None and request.cookies.get(CSRF_COOKIE) != token:
            response.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="strict", secure=settings.secure_cookies)
        return response

    def client_of(request: Request) -> str:
        """The client's address for rate limits (X-Forwarded-For only from ``trusted_proxies``)."""
        return client_id(request.client.host if request.client else None,
                         request.headers.getlist("x-forwarded-for"), proxies)

    def contribution_allowed(request: Request, session: DB) -> None:
        count_contribution(session, client_of(request), settings.contributions_per_hour)

    def see_other(url: str) -> RedirectResponse:
        return RedirectResponse(url, status_code=303)

    # -- errors: short pages, never a stack trace --------------------------------------------------
    def error_page(request: Request, status: int, message: str) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": message}, status_code=status)
        return templates.TemplateResponse(request, "error.html", {"viewer": None, "status": status,
                                                                  "message": message}, status_code=status)

    @app.exception_handler(InputError)
    async def _input_error(request: Request, exc: InputError) -> Response:
        return error_page(request, 400, str(exc))

    @app.exception_handler(RateLimited)
    async def _rate_limited(request: Request, exc: RateLimited) -> Response:
        response = error_page(request, 429, str(exc))
        response.headers["Retry-After"] = str(exc.retry_after)
        return response

    @app.exception_handler(Busy)
    async def _busy(request: Request, exc: Busy) -> Response:
        response = error_page(request, 503, str(exc))
        response.headers["Retry-After"] = str(exc.retry_after)
        return response

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> Response:
        return error_page(request, exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        fields = ", ".join(".".join(str(p) for p in e["loc"][1:]) or str(e["loc"][0]) for e in exc.errors())
        return error_page(request, 400, f"invalid or missing value in: {fields}")

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_page(request, 500, "something went wrong on our side; nothing was saved")

    # -- contributors ------------------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse)
    def home(request: Request, viewer: Viewer) -> Response:
        return render(request, "home.html", viewer)

    @app.get("/contribute", response_class=HTMLResponse)
    def contribute_form(request: Request, viewer: Viewer) -> Response:
        return render(request, "contribute.html", viewer, consent_text=q.CONSENT_TEXT,
                      consent_version=q.CONSENT_VERSION, slots=range(1, MAX_PHOTOS + 1))

    # Counted before the form is parsed: a refused client's photos are never read.
    @app.post("/contribute", response_class=HTMLResponse, dependencies=[Depends(contribution_allowed), CSRF])
    def contribute(request: Request, form: Form, session: DB, viewer: Viewer) -> Response:
        version = check_consent(_text(form, "consent") == "yes", _text(form, "consent_version"))
        answers = q.parse_answers({name: _text(form, name) for name in q.SINGLE_CHOICES},
                                  {name: _texts(form, name) for name in q.MULTI_CHOICES})
        photos = []
        for slot in range(1, MAX_PHOTOS + 1):
            upload = form.get(f"image_{slot}")
            if not isinstance(upload, UploadFile) or not upload.filename:
                continue
            data = upload.file.read(MAX_IMAGE_BYTES + 1)
            with check_slots.slot():
                checked = check_upload(data, f"image_{slot}")
            photos.append(Photo(checked,
                                q.parse_shot_type(_text(form, f"image_{slot}_shot_type"), f"image_{slot}_shot_type")))
        if not photos:
            raise InputError("add at least one photo", field="image_1")
        receipt = create_case(session, store, answers, photos, version)
        return render(request, "receipt.html", viewer, receipt=receipt, status=201)

    @app.get("/status", response_class=HTMLResponse)
    def status_form(request: Request, viewer: Viewer) -> Response:
        return render(request, "status.html", viewer, case=None)

    @app.post("/status", response_class=HTMLResponse, dependencies=[CSRF])
    def status(request: Request, form: Form, session: DB, viewer: Viewer) -> Response:
        code = _text(form, "receipt") or ""
        case = find_by_receipt(session, code)
        if case is None:
            raise HTTPException(404, "no contribution has this receipt code")
        return render(request, "status.html", viewer, case=case, receipt=code,
                      graded=sum(g.submitted_at is not None for g in case.grades))

    @app.post("/withdraw", response_class=HTMLResponse, dependencies=[CSRF])
    def withdraw_case(request: Request, form: Form, session: DB, viewer: Viewer) -> Response:
        if not withdraw(session, store, _text(form, "receipt") or ""):
            raise HTTPException(404, "no contribution has this receipt code")
        return render(request, "withdrawn.html", viewer)

    # -- accounts ----------------------------------------------------------------------------------
    @app.get("/login", response_class=HTMLResponse)
    def login_form(request: Request, viewer: Viewer) -> Response:
        return render(request, "login.html", viewer, failed=False)

    @app.post("/login", response_class=HTMLResponse, dependencies=[CSRF])
    async def login(request: Request, form: Form, session: DB) -> Response:
        client = client_of(request)
        username, password = _text(form, "username") or "", _text(form, "password") or ""
        await wait_before_checking(await run_in_threadpool(begin_sign_in, session, username, client, settings.login))
        token = await run_in_threadpool(sign_in, session, username, password, client, settings.login)
        if token is None:
            return render(request, "login.html", None, status=401, failed=True)
        viewer = await run_in_threadpool(signed_in, session, token)
        response = see_other("/admin" if viewer and viewer.role == "admin" else "/grade")
        response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="lax", secure=settings.secure_cookies)
        return response

    @app.post("/logout", dependencies=[CSRF])
    def logout(request: Request, session: DB) -> Response:
        sign_out(session, request.cookies.get(SESSION_COOKIE))
        response = see_other("/")
        response.delete_cookie(SESSION_COOKIE)
        return response

    # -- graders -----------------------------------------------------------------------------------
    @app.get("/grade", response_class=HTMLResponse)
    def queue(request: Request, session: DB, viewer: Grader) -> Response:
        waiting = queue_length(session, viewer.user_id, viewer.role, settings.needed)
        return render(request, "queue.html", viewer, waiting=waiting)

    @app.post("/grade/next", dependencies=[CSRF])
    def take_next(request: Request, session: DB, viewer: Grader) -> Response:
        record = next_assignment(session, viewer.user_id, viewer.role, settings.needed)
        if record is None:
            return render(request, "queue.html", viewer, waiting=0, empty=True)
        return see_other(f"/grade/{record.id}")

    def own_assignment(session: Session, grade_id: str, viewer: SignedIn) -> GradeRecord:
        number = row_id(grade_id)
        record = None if number is None else assignment(session, number, viewer.user_id)
        if record is None:
            raise HTTPException(404, "no open assignment of yours has this number")
        return record

    @app.get("/grade/{grade_id}", response_class=HTMLResponse)
    def grade_form(request: Request, grade_id: str, session: DB, viewer: Grader) -> Response:
        record = own_assignment(session, grade_id, viewer)
        template = "grade_dermatologist.html" if record.kind == "dermatologist" else "grade_lay.html"
        return render(request, template, viewer, record=record, images=record.case.images)

    @app.post("/grade/{grade_id}", dependencies=[CSRF])
    def grade(request: Request, grade_id: str, form: Form, session: DB, viewer: Grader) -> Response:
        record = own_assignment(session, grade_id, viewer)
        if record.kind == "dermatologist":
            slots = range(1, 4)
            answer = parse_dermatologist_answer(
                _text(form, "gradable"), [_text(form, f"condition_{s}") for s in slots],
                [_text(form, f"confidence_{s}") for s in slots], _text(form, "fitzpatrick"))
            submit_dermatologist(session, record, answer)
        else:
            submit_lay(session, record, parse_monk(_text(form, "monk")))
        return see_other("/grade")

    @app.get("/media/{image_id}")
    def media(image_id: str, session: DB, viewer: Annotated[SignedIn, Depends(_allow(*ROLES))]) -> Response:
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

    @app.get("/api/conditions")
    def conditions(text: Annotated[str, Query(alias="q", max_length=100)],
                   viewer: Annotated[SignedIn, Depends(_allow("dermatologist", "admin"))]) -> JSONResponse:
        return JSONResponse(search_conditions(text))

    # -- admins ------------------------------------------------------------------------------------
    @app.get("/admin", response_class=HTMLResponse)
    def dashboard(request: Request, session: DB, viewer: Admin) -> Response:
        return render(request, "dashboard.html", viewer, summary=summarize(session), plots=PLOTS, roles=ROLES)

    @app.get("/admin/plots/{name}.png")
    def dashboard_plot(name: str, session: DB, viewer: Admin) -> Response:
        if name not in PLOTS:
            raise HTTPException(404, "no such plot")
        return Response(plot(summarize(session), name), media_type="image/png",
                        headers={"Cache-Control": "private, no-store"})

    @app.get("/admin/cases", response_class=HTMLResponse)
    def cases(request: Request, session: DB, viewer: Admin) -> Response:
        rows = session.scalars(select(ContributedCase).order_by(ContributedCase.submitted_at.desc()).options(
            selectinload(ContributedCase.images),
            selectinload(ContributedCase.grades).selectinload(GradeRecord.conditions))).all()
        return render(request, "cases.html", viewer, cases=[(case, case_labels(case)) for case in rows],
                      conditions=default_ontology().conditions)

    @app.post("/admin/users", dependencies=[CSRF])
    def add_user(request: Request, form: Form, session: DB, viewer: Admin) -> Response:
        create_user(session, _text(form, "username") or "", _text(form, "password") or "", _text(form, "role") or "")
        return see_other("/admin")

    @app.get("/admin/export")
    def download(format: str, session: DB, viewer: Admin) -> Response:
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

    return app
