"""Errors: every failure is JSON {code, status, message, errors?} on the API (DESIGN.md §7)."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException, InternalServerError

from engine.errors import (
    AuthenticationError,
    ConflictError,
    FengqiaoError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
)

log = logging.getLogger(__name__)

STATUS = {
    NotFoundError: 404,
    PermissionDeniedError: 403,
    ConflictError: 409,
    ValidationError: 422,
    AuthenticationError: 401,
}
NAMES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Payload Too Large",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
}


def status_of(exc: FengqiaoError) -> int:
    """The HTTP status of a domain error."""
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]  # type: ignore[index]
    return 400


def error_body(code: int, message: str, errors: Any = None) -> dict[str, Any]:
    """The one error shape of the API."""
    body: dict[str, Any] = {"code": code, "status": NAMES.get(code, "Error"), "message": message}
    if errors:
        body["errors"] = errors
    return body


def _flatten_webargs(messages: Any) -> Any:
    # webargs nests field errors under the location ({"json": {...}}); one location is flattened.
    if isinstance(messages, dict) and len(messages) == 1:
        ((location, inner),) = messages.items()
        if location in {"json", "query", "form", "files", "path"} and isinstance(inner, dict):
            return inner
    return messages


def _is_api() -> bool:
    return request.path.startswith("/api/") or request.path == "/healthz"


def register_error_handlers(app: Flask) -> None:
    """Map domain exceptions and HTTP errors to JSON (API) or pages (HTML)."""

    @app.errorhandler(FengqiaoError)
    def _domain(exc: FengqiaoError) -> Any:
        code = status_of(exc)
        errors = exc.errors if isinstance(exc, ValidationError) else None
        if not _is_api():
            from web.pages import render_error

            return render_error(code, exc.message, errors)
        resp = jsonify(error_body(code, exc.message, errors))
        resp.status_code = code
        if code == 401:
            resp.headers["WWW-Authenticate"] = "Bearer"
        return resp

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Any:
        code = exc.code or 500
        if isinstance(exc, InternalServerError) and exc.original_exception is not None:
            log.error("unhandled error", exc_info=exc.original_exception)
        data = getattr(exc, "data", None) or {}
        errors = _flatten_webargs(data.get("errors") or data.get("messages"))
        message = data.get("message") or (exc.description if code < 500 else "internal error")
        if code == 422 and not data.get("message"):
            message = "validation failed"
        if not _is_api():
            from web.pages import render_error

            return render_error(code, str(message), errors)
        resp: Response = jsonify(error_body(code, str(message), errors))
        resp.status_code = code
        for key, value in (data.get("headers") or {}).items():
            resp.headers[key] = value
        return resp
