"""Response bodies of the API, as pydantic models: they are the OpenAPI schema and its examples."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from dermkit.models.card import RESEARCH_ONLY

NOT_A_DIAGNOSIS = (
    "This is not a diagnosis. The ranking, concepts and similar cases are the output of a research "
    "model and may be wrong; a clinician must examine the skin. " + RESEARCH_ONLY
)

_MODEL_EXAMPLE = {"id": "dermlip-lite", "version": "3f2a9c41d0b7"}
_CASE_EXAMPLE = {"case_id": "ham10000-ISIC_0024306", "score": 0.91, "diagnosis": "Melanocytic nevus",
                 "ontology_id": "melanocytic_nevus", "source": "ham10000",
                 "thumbnail_url": "/v1/cases/ham10000-ISIC_0024306/thumbnail"}


def _example(example: dict[str, Any]) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": [example]})


class ErrorDetail(BaseModel):
    code: str = Field(description="stable machine-readable reason, e.g. invalid_image, unknown_body_site")
    message: str
    field: str | None = Field(None, description="the request field at fault, e.g. images[1] or site")
    suggestions: list[str] = Field(default_factory=list, description="closest known terms, for vocabulary fields")


class ErrorResponse(BaseModel):
    model_config = _example({"error": {"code": "unknown_body_site", "message": "unknown body site 'forarm'; "
                                       "did you mean Forearm?", "field": "site", "suggestions": ["Forearm"]}})
    error: ErrorDetail


class ModelRef(BaseModel):
    model_config = _example(_MODEL_EXAMPLE)
    id: str
    version: str = Field(description="fingerprint of the weights")


class Term(BaseModel):
    id: str
    name: str


class ConditionScore(BaseModel):
    condition: str
    ontology_id: str
    probability: float = Field(ge=0, le=1)
    path: list[Term] = Field(default_factory=list, description="ontology path, root first ('other': empty)")


class ConceptScore(BaseModel):
    concept: str
    ontology_id: str
    score: float = Field(ge=0, le=1, description="MONET score: how much the image shows the concept")


class SimilarCase(BaseModel):
    model_config = _example(_CASE_EXAMPLE)
    case_id: str
    score: float = Field(description="cosine similarity to the query")
    diagnosis: str | None
    ontology_id: str | None
    source: str | None = None
    thumbnail_url: str | None


class ResolvedHistory(BaseModel):
    age: float | None = None
    sex: str | None = None
    fitzpatrick: int | None = None
    site: str | None = Field(None, description="body-site ontology id")
    symptoms: list[str] = Field(default_factory=list, description="symptom ontology ids")
    duration: str | None = None
    history: dict[str, bool] = Field(default_factory=dict, description="yes/no answers, by symptom id where known")
    measurements: dict[str, float] = Field(default_factory=dict)


class PredictResponse(BaseModel):
    model_config = _example({
        "differential": [{"condition": "Melanocytic nevus", "ontology_id": "melanocytic_nevus", "probability": 0.62},
                         {"condition": "Melanoma", "ontology_id": "melanoma", "probability": 0.21}],
        "differential_source": "zero-shot",
        "concepts": [{"concept": "Brown", "ontology_id": "brown", "score": 0.71}],
        "similar_cases": [_CASE_EXAMPLE],
        "history": {"age": 45, "sex": "female", "fitzpatrick": 2, "site": "back", "symptoms": ["itch"],
                    "duration": "one to four weeks"},
        "images": 1,
        "model": _MODEL_EXAMPLE,
        "differential_model": _MODEL_EXAMPLE,
        "disclaimer": NOT_A_DIAGNOSIS,
    })
    differential: list[ConditionScore]
    differential_source: Literal["zero-shot", "differential model"]
    concepts: list[ConceptScore]
    similar_cases: list[SimilarCase] = Field(description="empty when the server has no index")
    history: ResolvedHistory
    images: int
    model: ModelRef = Field(description="the vision-language model (embeddings, concepts, similar cases)")
    differential_model: ModelRef = Field(description="the model that ranked the differential")
    ignored: list[str] = Field(default_factory=list, description="history fields given that the differential "
                                                                  "model does not read")
    disclaimer: str


class EmbedResponse(BaseModel):
    model_config = _example({"model": _MODEL_EXAMPLE, "input": "text", "dim": 3, "embedding": [0.6, 0.0, 0.8]})
    model: ModelRef
    input: Literal["image", "text"]
    dim: int
    embedding: list[float] = Field(description="unit-length vector")


class SearchResponse(BaseModel):
    model_config = _example({"model": _MODEL_EXAMPLE, "query": "text", "results": [_CASE_EXAMPLE]})
    model: ModelRef
    query: Literal["image", "text"]
    results: list[SimilarCase]


class ModelInfo(BaseModel):
    role: Literal["vision-language", "differential"]
    id: str
    version: str
    dermkit_version: str
    card: dict[str, Any] | None


class IndexInfo(BaseModel):
    cases: int
    model: str | None


class HistoryFields(BaseModel):
    fields: list[str] = Field(description="the history fields the differential reads (the form shows these)")
    flags: list[Term] = Field(description="yes/no questions it was trained on: send history=ID=yes|no")
    measurements: list[str] = Field(description="numeric findings it reads: send measurements=NAME=VALUE")
    age_range: list[float] | None = Field(None, description="accepted ages, when the model restricts them")


class ModelsResponse(BaseModel):
    models: list[ModelInfo]
    history_fields: HistoryFields
    test_time_views: int | None = Field(None, description="views averaged per image (the model's stored count)")
    classes: list[Term] = Field(description="the differential's conditions, in order")
    concepts: int = Field(description="how many concepts are scored")
    index: IndexInfo | None


class VocabularyResponse(BaseModel):
    body_sites: list[Term]
    symptoms: list[Term]
    sexes: list[str]
    fitzpatrick: list[int]
    acquisitions: list[str]


class Status(BaseModel):
    model_config = _example({"status": "ok"})
    status: str


class PartStatus(BaseModel):
    model_config = ConfigDict(extra="allow")  # each part adds its detail (e.g. the prompt bank's source)
    state: Literal["pending", "loading", "ready", "failed"]
    seconds: float | None = Field(None, description="how long loading it took")


class ReadyResponse(BaseModel):
    model_config = _example({
        "status": "loading", "loading": ["prompt_bank", "differential", "inference"], "uptime_s": 2.4,
        "parts": {"model": {"state": "ready", "id": "dermlip-lite", "seconds": 1.9},
                  "index": {"state": "ready", "cases": 120, "seconds": 0.1},
                  "prompt_bank": {"state": "loading"}, "differential": {"state": "pending"},
                  "inference": {"state": "pending"}},
    })
    status: Literal["loading", "ready", "failed"]
    loading: list[str] = Field(description="the parts not loaded yet")
    parts: dict[str, PartStatus] = Field(description="model, index, prompt_bank (source: index, cache or "
                                                     "encoded), differential, inference")
    uptime_s: float
    error: str | None = Field(None, description="why loading failed (the server then stops)")
