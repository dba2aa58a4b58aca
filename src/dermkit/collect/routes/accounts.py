"""Signing in and out (graders and admins; contributors have no accounts)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from dermkit.collect.auth import begin_sign_in, sign_in, sign_out, signed_in
from dermkit.collect.routes.deps import (
    CSRF,
    DB,
    SESSION_COOKIE,
    Config,
    Form,
    Viewer,
    client_of,
    form_text,
    render,
    see_other,
)

router = APIRouter()


async def wait_before_checking(seconds: float) -> None:
    """The per-account sign-in delay; awaited, so a slowed sign-in holds no worker thread."""
    await asyncio.sleep(seconds)


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, viewer: Viewer) -> Response:
    return render(request, "login.html", viewer, failed=False)


@router.post("/login", response_class=HTMLResponse, dependencies=[CSRF])
async def login(request: Request, form: Form, session: DB, settings: Config) -> Response:
    client = client_of(request)
    username, password = form_text(form, "username") or "", form_text(form, "password") or ""
    await wait_before_checking(await run_in_threadpool(begin_sign_in, session, username, client, settings.login))
    token = await run_in_threadpool(sign_in, session, username, password, client, settings.login)
    if token is None:
        return render(request, "login.html", None, status=401, failed=True)
    viewer = await run_in_threadpool(signed_in, session, token)
    response = see_other("/admin" if viewer and viewer.role == "admin" else "/grade")
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="lax", secure=settings.secure_cookies)
    return response


@router.post("/logout", dependencies=[CSRF])
def logout(request: Request, session: DB) -> Response:
    sign_out(session, request.cookies.get(SESSION_COOKIE))
    response = see_other("/")
    response.delete_cookie(SESSION_COOKIE)
    return response
