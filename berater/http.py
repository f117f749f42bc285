"""The HTTP contract every feature shares: the response envelope and its models, the
documented error answers and security requirements, and the checks every JSON request goes
through at the edge."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import orjson
from flask import Response, current_app, request
from pydantic import BaseModel, ConfigDict

JSON_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MAX_JSON_DEPTH = 32

# Security requirements of an operation, for `spec.validate(security=...)`: a user token,
# or a partner app's `Bearer <app> <app_token>`; `BEARER + APP` accepts either.
BEARER: list[dict[str, list[str]]] = [{"bearer": []}]
APP: list[dict[str, list[str]]] = [{"app": []}]

T = TypeVar("T")


class Strict(BaseModel):
    """Unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


class Envelope(BaseModel, Generic[T]):
    """Every answer: `code` is the HTTP status of the outcome, `error` empty on success."""

    code: int
    error: str
    data: T | None = None


class ErrorOut(BaseModel):
    """Details of a failure, when there are any (e.g. the invalid fields of a 400)."""

    fields: list[dict[str, str]] | None = None
    retry_after: int | None = None


def errors(*statuses: int, model: type[BaseModel] = ErrorOut) -> dict[str, type[BaseModel]]:
    """The documented failure answers of an operation, for `spectree.Response(**errors(...))`:
    the envelope with `model` as its data, for each of `statuses`."""
    return {f"HTTP_{status}": Envelope[model] for status in statuses}  # type: ignore[valid-type]


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
