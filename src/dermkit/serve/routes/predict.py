"""``/v1/predict``: the ranked differential, concepts and similar cases for one case's photographs."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.concurrency import run_in_threadpool

from dermkit.data.images import PixelBudget
from dermkit.data.schema import FITZPATRICK_TYPES, SEXES
from dermkit.serve import schemas
from dermkit.serve.errors import ApiError
from dermkit.serve.history import resolve_history
from dermkit.serve.service import ServiceDep

Sex = Literal[SEXES]  # type: ignore[valid-type]
Acquisition = Literal["clinical", "dermoscopic"]

router = APIRouter(tags=["inference"])


@router.post("/v1/predict", response_model=schemas.PredictResponse)
async def predict(
    service: ServiceDep,
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
    from dermkit.serve.ddx_differential import parse_pairs  # torch-bound: imported once the engine is loaded

    engine = service.require_engine()
    config = service.config
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
