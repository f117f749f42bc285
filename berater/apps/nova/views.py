"""Nova endpoints: HTTP only; the work is in services, notify and export."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Response, request
from spectree import Response as Resp

from berater.apps.nova import bp, export, notify, services
from berater.apps.nova.schemas import (
    CancelOut,
    RegistrationIn,
    RegistrationOut,
    RegistrationsOut,
    RegistrationsQuery,
    SourceOut,
)
from berater.db import transaction
from berater.extensions import spec
from berater.http import BEARER, Envelope, errors, json_body, ok, query_args
from berater.identity import roles
from berater.identity.auth import current_identity, token_required, wechat_openid

STUDENT = roles.STUDENT
ADMIN = roles.NOVA_ADMIN
TAGS = ["nova"]
ERRORS = errors(400, 401, 403, 404, 409, 415, 503)
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _openid() -> str:
    """Registration is for WeChat users: a password account or an app has no admission record."""
    return wechat_openid("register")


@bp.get("/source")
@token_required(STUDENT)
@spec.validate(resp=Resp(HTTP_200=Envelope[SourceOut], **ERRORS), tags=TAGS, security=BEARER)
def get_source() -> Response:
    """The bearer's stuid, name and department, and the phone and QQ of an earlier registration."""
    return ok(services.source(_openid()))


@bp.get("/info")
@token_required(STUDENT)
@spec.validate(resp=Resp(HTTP_200=Envelope[RegistrationOut], **ERRORS), tags=TAGS, security=BEARER)
def get_info() -> Response:
    """The bearer's own registration; 404 when there is none or it was cancelled."""
    return ok(services.own(_openid()))


@bp.post("/info")
@token_required(STUDENT)
@spec.validate(
    json=RegistrationIn,
    resp=Resp(HTTP_200=Envelope[RegistrationOut], **ERRORS),
    tags=TAGS,
    security=BEARER,
)
def register() -> Response:
    """Register (or renew a cancelled registration) with phone, QQ and an optional intro."""
    body = json_body(RegistrationIn)
    openid = _openid()
    with transaction():
        data, notice = services.register(openid, body.phone, body.qq, body.intro)
    notify.send_later([notice])  # after the commit: a rolled-back registration sends nothing
    return ok(data)


@bp.delete("/info")
@token_required(STUDENT)
@spec.validate(resp=Resp(HTTP_200=Envelope[None], **ERRORS), tags=TAGS, security=BEARER)
def cancel() -> Response:
    """Cancel the bearer's registration (the row is kept; registering again renews it)."""
    openid = _openid()
    with transaction():
        notice = services.cancel_own(openid)
    notify.send_later([notice])
    return ok(None)


@bp.get("/admin/registrations")
@token_required(ADMIN)
@spec.validate(
    query=RegistrationsQuery,
    resp=Resp(HTTP_200=Envelope[RegistrationsOut], **ERRORS),
    tags=TAGS,
    security=BEARER,
)
def list_registrations() -> Response:
    """Registrations, newest first, searched by name, stuid or department (100 a page at most)."""
    query = query_args(RegistrationsQuery)
    return ok(
        services.registrations(query.q, query.status, query.page, query.per_page, query.department)
    )


@bp.post("/admin/registrations/<stuid>/cancel")
@token_required(ADMIN)
@spec.validate(resp=Resp(HTTP_200=Envelope[CancelOut], **ERRORS), tags=TAGS, security=BEARER)
def cancel_registration(stuid: str) -> Response:
    """Cancel the active registration of a student number (an audit row records who did)."""
    with transaction():
        notices = services.cancel_by_admin(stuid, current_identity.subject, request.remote_addr)
    notify.send_later(notices)
    return ok({"stuid": stuid, "cancelled": len(notices)})


def _download(body: bytes, mimetype: str, suffix: str) -> Response:
    day = datetime.now(UTC).strftime("%Y%m%d")
    response = Response(body, mimetype=mimetype)
    response.headers["Content-Disposition"] = (
        f'attachment; filename="nova-registrations-{day}.{suffix}"'
    )
    return response


@bp.get("/admin/export.csv")
@token_required(ADMIN)
@spec.validate(tags=TAGS, security=BEARER)
def export_csv() -> Response:
    """Every active registration as CSV (UTF-8 with BOM), with the club's Chinese headings."""
    return _download(export.to_csv(services.active_registrations()), "text/csv", "csv")


@bp.get("/admin/export.xlsx")
@token_required(ADMIN)
@spec.validate(tags=TAGS, security=BEARER)
def export_xlsx() -> Response:
    """Every active registration as an Excel workbook, with the club's Chinese headings."""
    return _download(export.to_xlsx(services.active_registrations()), XLSX, "xlsx")
