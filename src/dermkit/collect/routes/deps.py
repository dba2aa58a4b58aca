"""What the routers share: the app's state, the database session, the viewer and role checks,
the parsed form and its CSRF check, and page rendering.

:func:`dermkit.collect.app.create_app` puts the shared objects on ``app.state``; routes reach
them through the dependencies here, so a router holds no state of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException

from dermkit.collect import questionnaire as q
from dermkit.collect.auth import SignedIn, signed_in
from dermkit.collect.clients import client_id
from dermkit.collect.contributions import MAX_PHOTOS
from dermkit.collect.models import ROLES
from dermkit.collect.quality import CheckSlots
from dermkit.collect.security import new_token, same
from dermkit.collect.settings import Settings
from dermkit.collect.storage import MediaStore
from dermkit.core.errors import InputError

SESSION_COOKIE = "dk_session"
CSRF_COOKIE = "dk_csrf"
CSRF_FIELD = "csrf_token"


# -- the app's state ------------------------------------------------------------------------------

async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _store(request: Request) -> MediaStore:
    store: MediaStore = request.app.state.store
    return store


async def _check_slots(request: Request) -> CheckSlots:
    slots: CheckSlots = request.app.state.check_slots
    return slots


Config = Annotated[Settings, Depends(_settings)]
Store = Annotated[MediaStore, Depends(_store)]
Slots = Annotated[CheckSlots, Depends(_check_slots)]


def _db(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as session:
        yield session


DB = Annotated[Session, Depends(_db)]


# -- who is asking --------------------------------------------------------------------------------

def _signed_in(request: Request, session: DB) -> SignedIn | None:
    return signed_in(session, request.cookies.get(SESSION_COOKIE))


Viewer = Annotated[SignedIn | None, Depends(_signed_in)]


def allow(*roles: str) -> Callable[[SignedIn | None], SignedIn]:
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


Grader = Annotated[SignedIn, Depends(allow("dermatologist", "lay_grader"))]
Admin = Annotated[SignedIn, Depends(allow("admin"))]


def client_of(request: Request) -> str:
    """The client's address for rate limits (X-Forwarded-For only from ``trusted_proxies``)."""
    return client_id(request.client.host if request.client else None,
                     request.headers.getlist("x-forwarded-for"), request.app.state.proxies)


# -- forms ----------------------------------------------------------------------------------------

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


def form_text(form: FormData, name: str) -> str | None:
    """One text field (a file sent in its place is bad input)."""
    value = form.get(name)
    if value is not None and not isinstance(value, str):
        raise InputError("expected text, got a file", field=name)
    return value


def form_texts(form: FormData, name: str) -> list[str]:
    """Every value of a repeated text field."""
    values = form.getlist(name)
    if any(not isinstance(v, str) for v in values):
        raise InputError("expected text, got a file", field=name)
    return [str(v) for v in values]


# -- answers --------------------------------------------------------------------------------------

def render(request: Request, name: str, viewer: SignedIn | None, status: int = 200, **context: Any) -> Response:
    """A page; an anonymous visitor without a CSRF cookie gets one, for the forms on it."""
    templates: Jinja2Templates = request.app.state.templates
    token = viewer.csrf_token if viewer else request.cookies.get(CSRF_COOKIE) or new_token()
    response = templates.TemplateResponse(request, name, {"viewer": viewer, "csrf_token": token, "q": q,
                                                          **context}, status_code=status)
    if viewer is None and request.cookies.get(CSRF_COOKIE) != token:
        response.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="strict",
                            secure=request.app.state.settings.secure_cookies)
    return response


def error_page(request: Request, status: int, message: str) -> Response:
    """A short error page (JSON under ``/api/``), never a stack trace."""
    if request.url.path.startswith("/api/"):
        return JSONResponse({"detail": message}, status_code=status)
    templates: Jinja2Templates = request.app.state.templates
    return templates.TemplateResponse(request, "error.html", {"viewer": None, "status": status,
                                                              "message": message}, status_code=status)


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)
