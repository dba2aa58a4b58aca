"""One JSON error shape for every refusal, and the handlers that keep stack traces server-side.

Every 4xx body is ``{"error": {"code", "message", "field", "suggestions"}}`` so a client (and the
web page) can point at the offending form field; a 5xx says only that the server failed.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from dermkit.core.errors import InputError

if TYPE_CHECKING:
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

log = logging.getLogger("dermkit.serve")


class ApiError(Exception):
    """A refusal with its HTTP status, a stable machine code and the field at fault."""

    def __init__(
        self, status: int, code: str, message: str, field: str | None = None, suggestions: list[str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.suggestions = suggestions or []
        self.headers = headers  # e.g. Retry-After on a 429 or 503, WWW-Authenticate on a 401

    @classmethod
    def from_input_error(cls, error: InputError, field: str | None = None, status: int = 422) -> ApiError:
        """An :class:`InputError` (e.g. from ``open_image``) for the form field ``field``."""
        return cls(status, "invalid_input", error.message, field or error.field)


def error_body(code: str, message: str, field: str | None = None, suggestions: list[str] | None = None) -> dict:
    return {"error": {"code": code, "message": message, "field": field, "suggestions": suggestions or []}}


def install_error_handlers(app: FastAPI) -> None:
    """Map every exception type to the JSON error shape; unexpected ones are logged, not shown."""
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

    def respond(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse(body, status_code=status, headers=headers)

    async def api_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return respond(exc.status, error_body(exc.code, exc.message, exc.field, exc.suggestions), exc.headers)

    async def input_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, InputError)
        return respond(422, error_body("invalid_input", exc.message, exc.field))

    async def validation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {}
        location = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path", "form")]
        return respond(422, error_body("invalid_field", str(first.get("msg", "invalid request")),
                                       ".".join(location) or None))

    async def http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        return respond(exc.status_code, error_body(f"http_{exc.status_code}", str(exc.detail)),
                       headers=getattr(exc, "headers", None))

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return respond(500, error_body("internal", "internal server error; the server log has the details"))

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(InputError, input_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)
