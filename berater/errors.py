"""Errors every view may raise, and the handlers that turn any failure into the envelope."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from flask import Flask, Response
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from berater import logs
from berater.http import envelope

log = logging.getLogger("berater.errors")


class ApiError(Exception):
    """A failure with an HTTP status, a message for the caller and optional details."""

    status = 400
    message = "bad request"

    def __init__(
        self,
        message: str | None = None,
        data: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message or self.message)
        self.message = message or self.message
        self.data = data
        self.headers = headers or {}


class BadRequest(ApiError):
    status = 400
    message = "bad request"


class ValidationFailed(ApiError):
    status = 400
    message = "the request is not valid"

    @classmethod
    def of(cls, errors: Iterable[Mapping[str, Any]]) -> ValidationFailed:
        """The 400 naming each invalid field, from errors in pydantic's shape (`loc`, `msg`,
        `type`): data `{"fields": [{"field", "message", "type"}, ...]}`."""
        fields = [
            {
                "field": ".".join(str(part) for part in error.get("loc", ())) or "body",
                "message": error.get("msg", "invalid"),
                "type": error.get("type", "invalid"),
            }
            for error in errors
        ]
        names = ", ".join(sorted({field["field"] for field in fields}))
        return cls(f"invalid fields: {names}", {"fields": fields})


class Unauthorized(ApiError):
    status = 401
    message = "a valid token is required"

    def __init__(self, message: str | None = None, data: Any = None) -> None:
        super().__init__(message, data, {"WWW-Authenticate": 'Bearer realm="berater"'})


class Forbidden(ApiError):
    status = 403
    message = "this token may not do that"


class NotFound(ApiError):
    status = 404
    message = "not found"


class Conflict(ApiError):
    status = 409
    message = "conflict"


class Gone(ApiError):
    status = 410
    message = "gone"


class PayloadTooLarge(ApiError):
    status = 413
    message = "the request body is too large"


class UnsupportedMediaType(ApiError):
    status = 415
    message = "send the body as application/json"


class TooManyRequests(ApiError):
    status = 429
    message = "too many requests"

    def __init__(self, message: str | None = None, retry_after: int = 1) -> None:
        retry_after = max(1, int(retry_after))
        super().__init__(message, {"retry_after": retry_after}, {"Retry-After": str(retry_after)})


class UpstreamError(ApiError):
    status = 502
    message = "an upstream service failed"


class ServiceUnavailable(ApiError):
    status = 503
    message = "the service is unavailable, try again shortly"


class StoreUnavailable(ServiceUnavailable):
    message = "the session store is unavailable, try again shortly"


class DatabaseUnavailable(ServiceUnavailable):
    message = "the database is unavailable, try again shortly"


def register_error_handlers(app: Flask) -> None:
    """One handler per kind of failure; all of them answer with the envelope."""

    @app.errorhandler(ApiError)
    def handle_api_error(exc: ApiError) -> Response:
        return envelope(exc.status, exc.message, exc.data, headers=exc.headers)

    @app.errorhandler(HTTPException)
    def handle_http_exception(exc: HTTPException) -> Response:
        status = exc.code or 500
        message = {
            404: "no such endpoint",
            405: "method not allowed on this endpoint",
            413: "the request body is too large",
            431: "the request headers are too large",
        }.get(status, (exc.description or exc.name or "error").rstrip("."))
        headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
        return envelope(status, message, None, headers=headers)

    @app.errorhandler(OperationalError)
    @app.errorhandler(PoolTimeout)
    def handle_database_down(exc: Exception) -> Response:
        if (
            isinstance(exc, DBAPIError)
            and not exc.connection_invalidated
            and not _is_disconnect(exc)
        ):
            return handle_unexpected(exc)
        log.warning("database unavailable: %s %s", type(exc).__name__, getattr(exc, "orig", ""))
        return handle_api_error(DatabaseUnavailable())

    @app.errorhandler(Exception)
    def handle_unexpected(exc: Exception) -> Response:
        request_id = logs.request_id()
        log.error("unhandled error, request id %s", request_id, exc_info=exc)
        return envelope(500, f"internal error, request id {request_id}", None)


def _is_disconnect(exc: DBAPIError) -> bool:
    """True when the database could not be reached (as opposed to a bad statement)."""
    orig = getattr(exc, "orig", None)
    code = orig.args[0] if orig is not None and getattr(orig, "args", None) else None
    # MySQL client codes: 2002/2003 cannot connect, 2006 gone away, 2013 lost connection,
    # 1053 server shutdown, 1927 connection killed; SQLite reports "database is locked".
    return code in {1053, 1927, 2002, 2003, 2006, 2013} or "locked" in str(code or "")
