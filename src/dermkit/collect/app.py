"""The web app: contributor, grader and admin pages (server-rendered Jinja2, no build step).

:func:`create_app` builds the shared state (on ``app.state``), the middleware and the error
handlers, and includes the routers of :mod:`dermkit.collect.routes`. Every route states the roles
it admits (``deps.allow``); every form POST checks a CSRF token (the session's for signed-in
users, a cookie-bound one for contributors); errors are rendered as short pages without stack
traces. Run it with ``dermkit collect serve`` (binds 127.0.0.1).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import sessionmaker
from starlette.exceptions import HTTPException

from dermkit.collect.clients import trusted_networks
from dermkit.collect.contributions import sweep_media
from dermkit.collect.db import make_engine, upgrade
from dermkit.collect.middleware import BodyLimit, SecurityHeaders
from dermkit.collect.quality import Busy, CheckSlots
from dermkit.collect.routes import accounts, admin, contribute, grading
from dermkit.collect.routes.deps import error_page
from dermkit.collect.settings import Settings
from dermkit.collect.storage import MediaStore
from dermkit.collect.throttle import RateLimited
from dermkit.core.errors import InputError
from dermkit.core.memory import map_large_allocations

log = logging.getLogger("dermkit.collect")

HERE = Path(__file__).parent


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    map_large_allocations()  # decoded photos go back to the OS once freed
    engine = make_engine(settings.db_url)
    store = MediaStore(settings.media_dir)

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
    app.state.store = store
    app.state.proxies = trusted_networks(settings.trusted_proxies)
    app.state.check_slots = CheckSlots(settings.max_concurrent_uploads, settings.upload_wait_s)
    app.state.templates = Jinja2Templates(directory=HERE / "templates")
    app.add_middleware(BodyLimit, limit=settings.max_request_bytes)
    app.add_middleware(SecurityHeaders)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    for handled, handler in _ERROR_HANDLERS:
        app.add_exception_handler(handled, handler)  # type: ignore[arg-type]  # Starlette types handlers on Exception
    for area in (contribute, accounts, grading, admin):
        app.include_router(area.router)
    return app


# -- errors: short pages, never a stack trace -----------------------------------------------------

async def _input_error(request: Request, exc: InputError) -> Response:
    return error_page(request, 400, str(exc))


async def _retry_later(request: Request, exc: RateLimited | Busy) -> Response:
    response = error_page(request, 429 if isinstance(exc, RateLimited) else 503, str(exc))
    response.headers["Retry-After"] = str(exc.retry_after)
    return response


async def _http_error(request: Request, exc: HTTPException) -> Response:
    return error_page(request, exc.status_code, str(exc.detail))


async def _invalid(request: Request, exc: RequestValidationError) -> Response:
    fields = ", ".join(".".join(str(p) for p in e["loc"][1:]) or str(e["loc"][0]) for e in exc.errors())
    return error_page(request, 400, f"invalid or missing value in: {fields}")


async def _crash(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_page(request, 500, "something went wrong on our side; nothing was saved")


_ERROR_HANDLERS = (
    (InputError, _input_error), (RateLimited, _retry_later), (Busy, _retry_later), (HTTPException, _http_error),
    (RequestValidationError, _invalid), (Exception, _crash),
)
