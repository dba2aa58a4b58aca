"""``/v1/embed``, ``/v1/search`` and the index cases' thumbnails."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, File, Form, Path, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from dermkit.data.images import PixelBudget
from dermkit.serve import schemas
from dermkit.serve.config import MAX_SEARCH_RESULTS
from dermkit.serve.errors import ApiError
from dermkit.serve.service import Service, ServiceDep

if TYPE_CHECKING:
    import numpy as np

MAX_TEXT = 1000


def _one_input(image: UploadFile | None, text: str | None) -> None:
    if (image is None) == (text is None or not text.strip()):
        raise ApiError(422, "invalid_field", "send exactly one of image or text", "image" if image else "text")


async def _embed_one(service: Service, image: UploadFile | None, text: str | None) -> tuple[str, np.ndarray]:
    engine = service.require_engine()
    _one_input(image, text)
    async with service.admission.slot():
        if image is not None:
            picture = await service.read_image(image, "image", PixelBudget(service.config.max_request_pixels))
            pixels = await run_in_threadpool(engine.prepare_image, picture)
            return "image", await service.submit(service.images, pixels)
        return "text", await service.submit(service.texts, text or "")


def router(default_k: int) -> APIRouter:
    """The routes, with ``k``'s documented default ``default_k`` (the config's ``similar_cases``).

    A factory because a parameter's default is part of the route's declaration; everything else
    comes from the :class:`~dermkit.serve.service.Service` dependency.
    """
    routes = APIRouter()

    @routes.post("/v1/embed", response_model=schemas.EmbedResponse, tags=["inference"])
    async def embed(
        service: ServiceDep,
        image: Annotated[UploadFile | None, File(description="a photograph (or send text)")] = None,
        text: Annotated[str | None, Form(max_length=MAX_TEXT, examples=["a brown macule on the back"])] = None,
    ) -> dict[str, Any]:
        """The vision-language model's unit embedding of one image or one text."""
        kind, vector = await _embed_one(service, image, text)
        return {"model": service.model_ref(), "input": kind, "dim": len(vector), "embedding": vector.tolist()}

    @routes.post("/v1/search", response_model=schemas.SearchResponse, tags=["inference"])
    async def search(
        service: ServiceDep,
        image: Annotated[UploadFile | None, File(description="a photograph (or send text)")] = None,
        text: Annotated[str | None, Form(max_length=MAX_TEXT, examples=["a pearly papule with telangiectasia"])] = None,
        k: Annotated[int, Form(ge=1, le=MAX_SEARCH_RESULTS)] = default_k,
    ) -> dict[str, Any]:
        """The index cases most similar to an image or a text description, with thumbnails."""
        engine = service.require_engine()
        engine.require_index()
        kind, vector = await _embed_one(service, image, text)
        results = await run_in_threadpool(engine.search, vector[None, :], k)
        return {"model": service.model_ref(), "query": kind, "results": results[0]}

    @routes.get("/v1/cases/{case_id:path}/thumbnail", tags=["index"], response_class=Response,
                responses={200: {"content": {"image/jpeg": {}}}, 404: {"model": schemas.ErrorResponse}})
    async def thumbnail(service: ServiceDep, case_id: Annotated[str, Path(max_length=200)]) -> Response:
        """A small JPEG of an index case's first image (no metadata)."""
        data = await run_in_threadpool(service.require_engine().require_index().thumbnail, case_id)
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "max-age=86400"})

    return routes
