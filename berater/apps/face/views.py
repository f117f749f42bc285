"""The face API: HTTP only; the query is built in services."""

from __future__ import annotations

from flask import Response
from spectree import Response as Resp

from berater.apps.face import bp, services
from berater.apps.face.schemas import StudentsErrorOut, StudentsOut, StudentsQuery
from berater.extensions import spec
from berater.http import APP, BEARER, Envelope, errors, ok, query_args
from berater.identity import roles
from berater.identity.auth import token_required

FACE = roles.FACE
ERRORS = errors(400, 401, 403, 429, 503, model=StudentsErrorOut)


@bp.get("/students")
@token_required(FACE)
@spec.validate(
    query=StudentsQuery,
    resp=Resp(HTTP_200=Envelope[StudentsOut], **ERRORS),
    tags=["face"],
    security=APP + BEARER,
)
def list_students() -> Response:
    """A page of the admission list (at most 100 rows), by department, origin, name or number;
    the rows come out of the app's hourly budget (429 with Retry-After past it)."""
    query = query_args(StudentsQuery)
    return ok(
        services.list_students(FACE, query.filters(), query.columns(), query.page, query.per_page)
    )
