"""The face API: HTTP only; the query is built in services."""

from __future__ import annotations

from flask import Response
from spectree import Response as Resp

from berater.api.schemas import Envelope, ErrorOut
from berater.auth import token_required
from berater.extensions import spec
from berater.face import bp, services
from berater.face.schemas import StudentsOut, StudentsQuery
from berater.http import ok, query_args

FACE = "face"
ERRORS = {f"HTTP_{s}": Envelope[ErrorOut] for s in (400, 401, 403, 503)}


@bp.get("/students")
@token_required(FACE)
@spec.validate(
    query=StudentsQuery,
    resp=Resp(HTTP_200=Envelope[StudentsOut], **ERRORS),
    tags=["face"],
    security=[{"app": []}, {"bearer": []}],
)
def list_students() -> Response:
    """A page of the admission list (at most 500 rows), by department, origin, name or number."""
    query = query_args(StudentsQuery)
    return ok(services.find_students(query.filters(), query.columns(), query.page, query.per_page))
