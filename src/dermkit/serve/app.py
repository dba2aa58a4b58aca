"""The FastAPI application: the routers, request limits, access guards and error handlers.

:func:`create_app` takes either an :class:`~dermkit.serve.engine.Engine` that is already loaded
(tests build one around the small ``tiny-clip`` model) or the :class:`ServeConfig` to load one
from. Loading runs in a background thread, so the server binds and ``/healthz`` answers within
seconds while the model and prompt bank load; ``/readyz`` says what is still loading and the
inference routes answer 503 with ``Retry-After`` until it is done. A load that fails stops the
server through ``on_failure`` (``dermkit serve`` then exits with the reason). The routes live in
:mod:`dermkit.serve.routes`, the running engine and its batchers in :mod:`dermkit.serve.service`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from dermkit import __version__
from dermkit.core.memory import map_large_allocations
from dermkit.serve import schemas
from dermkit.serve.access import route_guards
from dermkit.serve.config import ServeConfig
from dermkit.serve.errors import install_error_handlers
from dermkit.serve.limits import BodyLimit
from dermkit.serve.readiness import PARTS, Readiness
from dermkit.serve.routes import about, health, page, predict, search
from dermkit.serve.service import Loader, Service, load_engine

if TYPE_CHECKING:
    from dermkit.serve.engine import Engine

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": schemas.ErrorResponse, "description": description}
    for status, description in ((409, "the server has no similar-case index"),
                                (413, "an image, the request body or the request's pixel budget is over its limit"),
                                (415, "an image in a format other than JPEG, PNG or WebP"),
                                (422, "a field is missing, of the wrong type, or not a usable image or term"),
                                (503, ("too many requests in progress, or the model or prompt bank is still loading: "
                                      "retry after the Retry-After seconds")))
}


def create_app(
    source: Engine | ServeConfig,
    *,
    loader: Loader | None = None,
    on_failure: Callable[[BaseException], None] | None = None,
) -> FastAPI:
    """The application around a loaded engine, or one that loads ``source`` in the background.

    ``loader`` replaces :meth:`Engine.load` (tests); ``on_failure`` is called on the event loop
    when loading fails. Routes are documented in ``docs/serve.md``.
    """
    map_large_allocations()  # decoded uploads go back to the OS once freed
    preloaded = None if isinstance(source, ServeConfig) else source
    config = source if isinstance(source, ServeConfig) else source.config
    service = Service(config, Readiness(("inference",) if preloaded is not None else PARTS))
    guards, guard_errors = route_guards(config)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if preloaded is not None:
            service.attach(preloaded)
        else:
            service.load_in_background(loader or load_engine(config), on_failure)
        try:
            yield
        finally:
            await service.stop()

    app = FastAPI(
        title="dermkit service",
        version=__version__,
        description="Differential, clinical concepts and similar cases for skin photographs. " + schemas.NOT_A_DIAGNOSIS,
        lifespan=lifespan,
    )
    app.state.service = service
    install_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=config.max_body_bytes)
    app.mount("/static", StaticFiles(directory=str(page.STATIC)), name="static")
    app.include_router(page.router)
    app.include_router(health.router)  # open: supervisors need no key
    for guarded in (predict.router, search.router(config.similar_cases), about.router):
        app.include_router(guarded, dependencies=guards, responses={**ERRORS, **guard_errors})
    return app
