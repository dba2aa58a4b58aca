"""The web page (its scripts and styles are the app's ``/static`` mount)."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import FileResponse

STATIC = resources.files("dermkit.serve").joinpath("static")

router = APIRouter()


@router.get("/", include_in_schema=False)
async def page() -> FileResponse:
    return FileResponse(str(STATIC.joinpath("index.html")), media_type="text/html")
