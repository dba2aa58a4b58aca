"""``/v1/models`` and ``/v1/vocabulary``: what is loaded, and the history form's choices."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from dermkit.data.schema import FITZPATRICK_TYPES, SEXES
from dermkit.serve import schemas
from dermkit.serve.service import ServiceDep

router = APIRouter(tags=["about"])


@router.get("/v1/models", response_model=schemas.ModelsResponse)
async def models(service: ServiceDep) -> dict[str, Any]:
    """The loaded models with their cards, the differential's classes and history fields, the index size."""
    from dermkit.serve.ddx_differential import ranked_entry

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


@router.get("/v1/vocabulary", response_model=schemas.VocabularyResponse)
async def vocabulary(service: ServiceDep) -> dict[str, Any]:
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
