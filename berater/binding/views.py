"""Binding endpoints: /api/candidate, /api/student, /api/source."""

from __future__ import annotations

from typing import Any

from flask import Response
from spectree import Response as Resp

from berater.binding import bp, services
from berater.binding.schemas import (
    BoundOut,
    CandidateIn,
    CandidateOut,
    CandidatePatch,
    SourceOut,
    StudentIn,
    StudentPatch,
)
from berater.db import transaction
from berater.extensions import spec
from berater.http import BEARER, Envelope, errors, json_body, ok
from berater.identifiers import mask_phone
from berater.identity import roles
from berater.identity.auth import current_identity, token_required, wechat_openid
from berater.identity.services import issue_token

ERRORS = errors(400, 401, 403, 404, 409, 429, 503)
BOUND = Resp(HTTP_200=Envelope[BoundOut], **ERRORS)


def _candidate_record(row: Any) -> dict[str, Any]:
    return {
        "name": row.name,
        "province": row.province,
        "city": row.city,
        "score": row.score,
        "subject": row.subject,
        "phone": mask_phone(row.phone),
    }


def _bound(record: dict[str, Any]) -> Response:
    """The answer to a binding: a fresh token and the record. Called after the commit, so the
    token is issued after the binding's roles-changed mark and is not sent back to the
    database at each check (berater.identity.revocation)."""
    return ok({**issue_token(current_identity.subject), "record": record})


def _wechat_only() -> str:
    """Binding is for WeChat users: password accounts and apps have no openid to bind."""
    return wechat_openid("be bound")


@bp.post("/candidate")
@token_required()
@spec.validate(json=CandidateIn, resp=BOUND, tags=["binding"], security=BEARER)
def create_candidate() -> Response:
    """Register as a candidate (考生) with the phone just verified by SMS."""
    fields = json_body(CandidateIn).model_dump()
    with transaction():
        record = _candidate_record(services.bind_candidate(_wechat_only(), fields))
    return _bound(record)


@bp.get("/candidate")
@token_required(roles.CANDIDATE)
@spec.validate(
    resp=Resp(HTTP_200=Envelope[CandidateOut], **ERRORS), tags=["binding"], security=BEARER
)
def get_candidate() -> Response:
    """The bearer's own candidate details, the phone masked."""
    return ok(_candidate_record(services.own_candidate(_wechat_only())))


@bp.patch("/candidate")
@token_required(roles.CANDIDATE)
@spec.validate(json=CandidatePatch, resp=BOUND, tags=["binding"], security=BEARER)
def patch_candidate() -> Response:
    """Change some of the candidate's details."""
    fields = json_body(CandidatePatch).model_dump(exclude_unset=True, exclude_none=True)
    with transaction():
        record = _candidate_record(services.update_candidate(_wechat_only(), fields))
    return _bound(record)


@bp.post("/student")
@token_required()
@spec.validate(json=StudentIn, resp=BOUND, tags=["binding"], security=BEARER)
def create_student() -> Response:
    """Bind to the admission list: ID card plus student number or admission number."""
    body = json_body(StudentIn)
    openid = _wechat_only()
    with transaction():
        services.bind_student(openid, body.id_card, body.id)
        record = services.own_source(openid)
    return _bound(record)


@bp.patch("/student")
@token_required(roles.STUDENT)
@spec.validate(json=StudentPatch, resp=BOUND, tags=["binding"], security=BEARER)
def patch_student() -> Response:
    """Change the bound student's phone (verified by SMS)."""
    fields = json_body(StudentPatch).model_dump(exclude_unset=True, exclude_none=True)
    openid = _wechat_only()
    with transaction():
        services.update_student(openid, fields)
        record = services.own_source(openid)
    return _bound(record)


@bp.get("/source")
@token_required(roles.STUDENT)
@spec.validate(resp=Resp(HTTP_200=Envelope[SourceOut], **ERRORS), tags=["binding"], security=BEARER)
def get_source() -> Response:
    """The bearer's own admission-list record, ID card and phone masked."""
    return ok(services.own_source(_wechat_only()))
