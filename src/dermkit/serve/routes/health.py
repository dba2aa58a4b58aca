"""Liveness and readiness, open to supervisors without a key or rate limit."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from dermkit.serve import schemas
from dermkit.serve.readiness import RETRY_AFTER_S
from dermkit.serve.service import ServiceDep

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=schemas.Status)
async def healthz() -> dict[str, str]:
    """The process is up (it may still be starting)."""
    return {"status": "ok"}


@router.get("/readyz", response_model=schemas.ReadyResponse,
            responses={503: {"model": schemas.ReadyResponse, "description": "still loading, or loading failed"}})
async def readyz(service: ServiceDep) -> Any:
    """Model, index and prompt bank loaded and inference running: requests will be answered."""
    report = service.readiness.report()
    if service.ready:
        return report
    return JSONResponse(report, status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)})
