"""The response envelope, and checks every JSON request goes through at the edge."""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from flask import Response, current_app, request
from pydantic import BaseModel

JSON_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MAX_JSON_DEPTH = 32


def envelope(status: int, error: str, data: Any, headers: dict[str, str] | None = None) -> Response:
    """Build `{"code", "error", "data"}`; legacy mode answers 200 on the status line."""
    body = orjson.dumps({"code": status, "error": error, "data": data})
    line = 200 if current_app.config["LEGACY_STATUS_200"] else status
    response = Response(body, status=line, mimetype="application/json")
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def ok(data: Any = None, status: int = 200) -> Response:
    """A success envelope."""
    return envelope(status, "", data)


def read_json_body() -> None:
    """Parse a JSON body once, before any view: 415 for other media, 400 for bad JSON.

    The parsed value is cached by Flask, so `request.get_json()` and the validators reuse it.
    """
    from berater.errors import BadRequest, UnsupportedMediaType

    if request.method not in JSON_METHODS:
        return
    raw = request.get_data(cache=True)
    if not raw:
        return
    if not request.is_json:
        raise UnsupportedMediaType()
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequest("the body is not valid JSON") from None
    if not isinstance(value, dict):
        raise BadRequest("the body must be a JSON object")
    if _depth(value) > MAX_JSON_DEPTH:
        raise BadRequest("the body is nested too deeply")
    request._cached_json = (value, value)  # Flask's own cache for get_json()


def _depth(value: Any, level: int = 1) -> int:
    if level > MAX_JSON_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level)
    return level


M = TypeVar("M", bound=BaseModel)


def json_body(model: type[M]) -> M:
    """The body, already validated against `model` by `spec.validate(json=model)`."""
    from berater.errors import BadRequest

    value = getattr(getattr(request, "context", None), "json", None)
    if not isinstance(value, model):
        raise BadRequest("send a JSON object body with Content-Type: application/json")
    return value


def query_args(model: type[M]) -> M:
    """The query string, already validated against `model` by `spec.validate(query=model)`."""
    from berater.errors import BadRequest

    value = getattr(getattr(request, "context", None), "query", None)
    if not isinstance(value, model):
        raise BadRequest("the query string is not valid")
    return value
