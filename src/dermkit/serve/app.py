"""The FastAPI application: routes, request validation, micro-batched inference, the web page.

:func:`create_app` takes either an :class:`~dermkit.serve.engine.Engine` that is already loaded
(tests build one around the small ``tiny-clip`` model) or the :class:`ServeConfig` to load one
from. Loading runs in a background thread, so the server binds and ``/healthz`` answers within
seconds while the model and prompt bank load; ``/readyz`` says what is still loading and the
inference routes answer 503 with ``Retry-After`` until it is done. A load that fails stops the
server through ``on_failure`` (``dermkit serve`` then exits with the reason).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import FastAPI, File, Form, Path, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from dermkit import __version__
from dermkit.core.errors import DermkitError
from dermkit.core.memory import map_large_allocations
from dermkit.data.images import PixelBudget
from dermkit.data.schema import FITZPATRICK_TYPES, SEXES
from dermkit.serve import schemas
from dermkit.serve.access import route_guards
from dermkit.serve.admission import Admission
from dermkit.serve.batcher import MicroBatcher
from dermkit.serve.config import MAX_SEARCH_RESULTS, ServeConfig
from dermkit.serve.errors import ApiError, install_error_handlers
from dermkit.serve.history import resolve_history
from dermkit.serve.limits import BodyLimit
from dermkit.serve.readiness import PARTS, RETRY_AFTER_S, Readiness
from dermkit.serve.uploads import check_size, decode_upload, store_upload

if TYPE_CHECKING:
    import numpy as np
    from PIL.Image import Image

    from dermkit.serve.differential import CaseInput
    from dermkit.serve.engine import Engine, Prediction

log = logging.getLogger("dermkit.serve")
STATIC = resources.files("dermkit.serve").joinpath("static")
MAX_TEXT = 1000
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": schemas.ErrorResponse, "description": description}
    for status, description in ((409, "the server has no similar-case index"),
                                (413, "an image, the request body or the request's pixel budget is over its limit"),
                                (415, "an image in a format other than JPEG, PNG or WebP"),
                                (422, "a field is missing, of the wrong type, or not a usable image or term"),
                                (503, ("too many requests in progress, or the model or prompt bank is still loading: "
                                      "retry after the Retry-After seconds")))
}
Sex = Literal[SEXES]  # type: ignore[valid-type]
Acquisition = Literal["clinical", "dermoscopic"]
Loader = Callable[[Readiness], "Engine"]


def load_engine(config: ServeConfig) -> Loader:
    """The default loader: :meth:`Engine.load` (imported here, so binding never waits for torch)."""
    def load(readiness: Readiness) -> Engine:
        from dermkit.serve.engine import Engine

        return Engine.load(config, readiness=readiness)
    return load


class Service:
    """The engine (once loaded) plus its batchers and model thread; one per app."""

    def __init__(self, config: ServeConfig, readiness: Readiness) -> None:
        self.config = config
        self.readiness = readiness
        self.engine: Engine | None = None
        self.executor: ThreadPoolExecutor | None = None
        self.decoder: ThreadPoolExecutor | None = None
        self.admission = Admission(config.max_concurrent, config.queue_timeout_s)
        self.batchers: tuple[MicroBatcher[Any, Any], ...] = ()

    def attach(self, engine: Engine) -> None:
        """Start the batchers around a loaded engine; one model thread, so inference calls never overlap."""
        options = {"max_batch": self.config.max_batch, "max_wait_ms": self.config.max_wait_ms}
        self.predict: MicroBatcher[CaseInput, Prediction] = MicroBatcher(
            engine.predict, units=lambda case: len(case.pixels), name="predict", **options)
        self.images: MicroBatcher[Any, np.ndarray] = MicroBatcher(engine.embed_images, name="image", **options)
        self.texts: MicroBatcher[str, np.ndarray] = MicroBatcher(engine.embed_texts, name="text", **options)
        self.batchers = (self.predict, self.images, self.texts)
        self.readiness.loading("inference")
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dermkit-model")
        # Few decoding threads: decoding memory is bounded by their number, not by the clients'.
        self.decoder = ThreadPoolExecutor(max_workers=self.config.decode_threads,
                                          thread_name_prefix="dermkit-decode")
        for batcher in self.batchers:
            batcher.start(self.executor)
        self.engine = engine
        self.readiness.ready("inference", max_batch=self.config.max_batch)
        log.info("ready: %s", ", ".join(f"{part} {detail.get('seconds', 0):.1f} s"
                                         for part, detail in self.readiness.report()["parts"].items()))

    def load_in_background(self, loader: Loader, on_failure: Callable[[BaseException], None] | None) -> None:
        """Run ``loader`` in a daemon thread (a server stopped mid-load does not wait for it), then attach."""
        loop = asyncio.get_running_loop()

        def work() -> None:
            try:
                engine = loader(self.readiness)
            except Exception as error:
                log.error("loading failed: %s", error, exc_info=not isinstance(error, DermkitError))
                self.readiness.failed(error)
                if on_failure is not None:
                    with contextlib.suppress(RuntimeError):  # the loop is already closed
                        loop.call_soon_threadsafe(on_failure, error)
                return
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self.attach, engine)

        threading.Thread(target=work, name="dermkit-load", daemon=True).start()

    async def stop(self) -> None:
        for batcher in self.batchers:
            await batcher.stop()
        for executor in (self.executor, self.decoder):
            if executor is not None:
                executor.shutdown(wait=False)

    @property
    def ready(self) -> bool:
        return self.engine is not None and all(batcher.running for batcher in self.batchers)

    def require_engine(self) -> Engine:
        """The loaded engine, or 503 with ``Retry-After`` naming what is still loading."""
        if self.engine is None or not self.ready:
            if self.readiness.error is not None:
                raise ApiError(503, "not_ready", f"the service failed to load and is stopping: {self.readiness.error}")
            waiting = self.readiness.still_loading()
            raise ApiError(503, "not_ready", "the service is not ready: still loading " + ", ".join(waiting)
                           + "; retry shortly", headers={"Retry-After": str(RETRY_AFTER_S)})
        return self.engine

    async def submit(self, batcher: MicroBatcher[Any, Any], item: Any) -> Any:
        """Queue ``item`` on ``batcher``; 503 while the service is stopping."""
        if not batcher.running:
            raise ApiError(503, "not_ready", "the service is not ready; retry shortly",
                           headers={"Retry-After": str(RETRY_AFTER_S)})
        return await batcher.submit(item)

    def model_ref(self, role: str = "vision-language") -> dict[str, str]:
        described = next(m for m in self.require_engine().models if m["role"] == role)
        return {"id": described["id"], "version": described["version"]}

    async def read_image(self, upload: UploadFile, field: str, budget: PixelBudget) -> Image:
        """Read and decode one upload in a decoding thread (decoding must not block the event loop)."""
        config = self.config
        check_size(upload.size, field, config.max_image_bytes)
        data = await upload.read(config.max_image_bytes + 1)
        image = await asyncio.get_running_loop().run_in_executor(self.decoder, decode_upload, data, field, config,
                                                                 budget)
        if config.store_uploads is not None:
            await run_in_threadpool(store_upload, image, config.store_uploads)
        return image


def _one_input(image: UploadFile | None, text: str | None) -> None:
    if (image is None) == (text is None or not text.strip()):
        raise ApiError(422, "invalid_field", "send exactly one of image or text", "image" if image else "text")


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
    errors = {**ERRORS, **guard_errors}

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
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(str(STATIC.joinpath("index.html")), media_type="text/html")

    @app.get("/healthz", response_model=schemas.Status, tags=["health"])
    async def healthz() -> dict[str, str]:
        """The process is up (it may still be starting)."""
        return {"status": "ok"}

    @app.get("/readyz", response_model=schemas.ReadyResponse, tags=["health"],
             responses={503: {"model": schemas.ReadyResponse, "description": "still loading, or loading failed"}})
    async def readyz() -> Any:
        """Model, index and prompt bank loaded and inference running: requests will be answered."""
        report = service.readiness.report()
        if service.ready:
            return report
        return JSONResponse(report, status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)})

    @app.post("/v1/predict", response_model=schemas.PredictResponse, responses=errors, tags=["inference"],
              dependencies=guards)
    async def predict(
        images: Annotated[list[UploadFile], File(description="1–6 photographs of the same lesion or case")],
        age: Annotated[float | None, Form(ge=0, le=130, description="years")] = None,
        sex: Annotated[Sex | None, Form()] = None,
        fitzpatrick: Annotated[int | None, Form(ge=min(FITZPATRICK_TYPES), le=max(FITZPATRICK_TYPES))] = None,
        site: Annotated[str | None, Form(max_length=100, description="body site, any ontology name or synonym",
                                         examples=["forearm"])] = None,
        symptoms: Annotated[list[str] | None, Form(description="one field per symptom, e.g. itch",
                                                   examples=[["itch"]])] = None,
        duration: Annotated[str | None, Form(max_length=100, examples=["one to four weeks"])] = None,
        history: Annotated[list[str] | None, Form(description="yes/no history answers, one field each, ID=yes|no "
                                                              "(the ids: /v1/models history_fields.flags)",
                                                  examples=[["itch=yes"]])] = None,
        measurements: Annotated[list[str] | None, Form(description="numeric findings, NAME=VALUE",
                                                       examples=[["diameter_1_mm=6"]])] = None,
        acquisition: Annotated[Acquisition | None, Form(description="selects the prompt templates")] = None,
    ) -> dict[str, Any]:
        """Ranked differential, top clinical concepts and similar cases for one case's photographs."""
        from dermkit.serve.ddx import parse_pairs  # torch-bound: imported once the engine is loaded

        engine = service.require_engine()
        if len(images) > config.max_images:
            raise ApiError(422, "too_many_images", f"{len(images)} images sent, at most {config.max_images} allowed",
                           "images")
        resolved = resolve_history(age=age, sex=sex, fitzpatrick=fitzpatrick, site=site, symptoms=symptoms or [],
                                   duration=duration, answers=parse_pairs(history or [], "history", bool),
                                   measurements=parse_pairs(measurements or [], "measurements", float),
                                   ontology=engine.ontology)
        ignored = engine.differential.check(resolved)  # 422 for a value the model refuses
        async with service.admission.slot():
            budget = PixelBudget(config.max_request_pixels)
            pictures = [await service.read_image(upload, f"images[{i}]", budget) for i, upload in enumerate(images)]
            case = await run_in_threadpool(engine.prepare_case, pictures, resolved, acquisition)
            result = await service.submit(service.predict, case)
        differential_role = "vision-language" if len(engine.models) == 1 else "differential"
        return {
            "differential": result.differential,
            "differential_source": engine.differential.source,
            "concepts": result.concepts,
            "similar_cases": result.similar_cases,
            "history": resolved.as_dict(),
            "images": len(pictures),
            "model": service.model_ref(),
            "differential_model": service.model_ref(differential_role),
            "ignored": ignored,
            "disclaimer": schemas.NOT_A_DIAGNOSIS,
        }

    async def embed_one(image: UploadFile | None, text: str | None) -> tuple[str, np.ndarray]:
        engine = service.require_engine()
        _one_input(image, text)
        async with service.admission.slot():
            if image is not None:
                picture = await service.read_image(image, "image", PixelBudget(config.max_request_pixels))
                pixels = await run_in_threadpool(engine.prepare_image, picture)
                return "image", await service.submit(service.images, pixels)
            return "text", await service.submit(service.texts, text or "")

    @app.post("/v1/embed", response_model=schemas.EmbedResponse, responses=errors, tags=["inference"],
              dependencies=guards)
    async def embed(
        image: Annotated[UploadFile | None, File(description="a photograph (or send text)")] = None,
        text: Annotated[str | None, Form(max_length=MAX_TEXT, examples=["a brown macule on the back"])] = None,
    ) -> dict[str, Any]:
        """The vision-language model's unit embedding of one image or one text."""
        kind, vector = await embed_one(image, text)
        return {"model": service.model_ref(), "input": kind, "dim": len(vector), "embedding": vector.tolist()}

    @app.post("/v1/search", response_model=schemas.SearchResponse, responses=errors, tags=["inference"],
              dependencies=guards)
    async def search(
        image: Annotated[UploadFile | None, File(description="a photograph (or send text)")] = None,
        text: Annotated[str | None, Form(max_length=MAX_TEXT, examples=["a pearly papule with telangiectasia"])] = None,
        k: Annotated[int, Form(ge=1, le=MAX_SEARCH_RESULTS)] = config.similar_cases,
    ) -> dict[str, Any]:
        """The index cases most similar to an image or a text description, with thumbnails."""
        engine = service.require_engine()
        engine.require_index()
        kind, vector = await embed_one(image, text)
        results = await run_in_threadpool(engine.search, vector[None, :], k)
        return {"model": service.model_ref(), "query": kind, "results": results[0]}

    @app.get("/v1/cases/{case_id:path}/thumbnail", tags=["index"], response_class=Response, dependencies=guards,
             responses={200: {"content": {"image/jpeg": {}}}, 404: {"model": schemas.ErrorResponse}, **errors})
    async def thumbnail(case_id: Annotated[str, Path(max_length=200)]) -> Response:
        """A small JPEG of an index case's first image (no metadata)."""
        data = await run_in_threadpool(service.require_engine().require_index().thumbnail, case_id)
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "max-age=86400"})

    @app.get("/v1/models", response_model=schemas.ModelsResponse, tags=["about"], dependencies=guards,
             responses=errors)
    async def models() -> dict[str, Any]:
        """The loaded models with their cards, the differential's classes and history fields, the index size."""
        from dermkit.serve.ddx import ranked_entry

        engine = service.require_engine()
        similar = engine.similar
        return {
            "models": engine.models,
            "history_fields": engine.differential.fields(),
            "test_time_views": engine.differential.test_time_views,
            "classes": [{"id": entry["ontology_id"], "name": entry["condition"]}
                        for entry in (ranked_entry(cid, 0.0, engine.ontology) for cid in engine.differential.classes)],
            "concepts": len(engine.bank.concepts),
            "index": None if similar is None else {"cases": len(similar), "model": similar.model},
        }

    @app.get("/v1/vocabulary", response_model=schemas.VocabularyResponse, tags=["about"], dependencies=guards,
             responses=errors)
    async def vocabulary() -> dict[str, Any]:
        """Body sites, symptoms and the other choices of the history form (answered while loading, too)."""
        from dermkit.ontology import default_ontology

        ontology = default_ontology() if service.engine is None else service.engine.ontology
        return {
            "body_sites": [{"id": node.id, "name": node.name} for node in ontology.body_sites],
            "symptoms": [{"id": node.id, "name": node.name} for node in ontology.symptoms
                         if not ontology.symptoms.children(node.id)],
            "sexes": list(SEXES),
            "fitzpatrick": list(FITZPATRICK_TYPES),
            "acquisitions": ["clinical", "dermoscopic"],
        }

    return app

