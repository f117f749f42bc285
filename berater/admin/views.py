"""The admin JSON API (a Bearer token holding `admin`): links, roles, audit, accounts."""

from __future__ import annotations

from flask import Response, request
from spectree import Response as Resp

from berater.admin import bp, export, invites, services
from berater.admin.schemas import (
    AuditFilterQuery,
    AuditOut,
    AuditQuery,
    HoldersOut,
    LinkOut,
    PasswordReset,
    PasswordRulesOut,
    PendingListOut,
    PendingOut,
    RevokeOut,
    RevokeRequest,
    UserCreate,
    UserOut,
    UsersOut,
)
from berater.db import transaction
from berater.extensions import spec
from berater.http import BEARER, Envelope, errors, json_body, ok, query_args
from berater.identity import roles
from berater.identity.auth import current_identity, token_required
from berater.urls import external_url

ADMIN = roles.ADMIN
TAGS = ["admin"]
ERRORS = errors(400, 401, 403, 404, 409, 415, 503)


@bp.get("/link/<role>")
@token_required(ADMIN)
@spec.validate(resp=Resp(HTTP_200=Envelope[LinkOut], **ERRORS), tags=TAGS, security=BEARER)
def create_link(role: str) -> Response:
    """A one-time link (30 min) that grants `role` to whoever opens it and confirms."""
    with transaction():
        seq, ttl = invites.create(current_identity.subject, role, request.remote_addr)
    link = external_url("admin.preview", seq=seq)
    return ok({"link": link, "role": role, "seq_expires_in": ttl})


@bp.get("/roles/<role>")
@token_required(ADMIN)
@spec.validate(resp=Resp(HTTP_200=Envelope[HoldersOut], **ERRORS), tags=TAGS, security=BEARER)
def list_holders(role: str) -> Response:
    """Who holds `role`."""
    return ok(services.holders(role))


@bp.post("/roles/<role>/revoke")
@token_required(ADMIN)
@spec.validate(
    json=RevokeRequest,
    resp=Resp(HTTP_200=Envelope[RevokeOut], **ERRORS),
    tags=TAGS,
    security=BEARER,
)
def revoke_role(role: str) -> Response:
    """Take `role` from a holder; the holder's tokens lose it at their next check."""
    body = json_body(RevokeRequest)
    with transaction():
        data = services.revoke(current_identity.subject, role, body.subject, request.remote_addr)
    return ok(data)


@bp.get("/audit")
@token_required(ADMIN)
@spec.validate(
    query=AuditQuery, resp=Resp(HTTP_200=Envelope[AuditOut], **ERRORS), tags=TAGS, security=BEARER
)
def list_audit() -> Response:
    """Grants, revocations and account changes, newest first (at most 100 a page)."""
    query = query_args(AuditQuery)
    return ok(services.audit_page(query.page, query.per_page, query.to_filter()))


@bp.get("/audit/export.csv")
@token_required(ADMIN)
@spec.validate(query=AuditFilterQuery, tags=TAGS, security=BEARER)
def export_audit() -> Response:
    """The rows the filter keeps as CSV (UTF-8 with BOM), newest first; at most 10,000:
    `X-Total-Count` says how many the filter keeps, `X-Exported-Count` how many are in the
    file."""
    body, exported, total = services.audit_csv(query_args(AuditFilterQuery).to_filter())
    return export.audit_download(body, exported, total)


@bp.get("/invitations")
@token_required(ADMIN)
@spec.validate(resp=Resp(HTTP_200=Envelope[PendingListOut], **ERRORS), tags=TAGS, security=BEARER)
def pending_invitations() -> Response:
    """Links not yet confirmed, cancelled or expired, newest first (never the links)."""
    return ok({"invitations": [p.to_dict() for p in invites.pending()]})


@bp.post("/invitations/<digest>/cancel")
@token_required(ADMIN)
@spec.validate(resp=Resp(HTTP_200=Envelope[PendingOut], **ERRORS), tags=TAGS, security=BEARER)
def cancel_invitation(digest: str) -> Response:
    """Withdraw a pending link by its digest; opening it is then a 404. A link already used,
    cancelled or expired: 404."""
    with transaction():
        cancelled = invites.cancel(current_identity.subject, digest, request.remote_addr)
    return ok(cancelled.to_dict())


@bp.get("/password-rules")
@token_required(ADMIN)
@spec.validate(resp=Resp(HTTP_200=Envelope[PasswordRulesOut], **ERRORS), tags=TAGS, security=BEARER)
def password_rules() -> Response:
    """What a new account's username and password must be, before the first try."""
    return ok(services.password_rules())


@bp.get("/users")
@token_required(ADMIN)
@spec.validate(resp=Resp(HTTP_200=Envelope[UsersOut], **ERRORS), tags=TAGS, security=BEARER)
def list_users() -> Response:
    """Every password account."""
    return ok(services.users())


@bp.post("/users")
@token_required(ADMIN)
@spec.validate(
    json=UserCreate, resp=Resp(HTTP_200=Envelope[UserOut], **ERRORS), tags=TAGS, security=BEARER
)
def create_user() -> Response:
    """A new password account (8-128 characters, not a common password); a taken name: 409."""
    body = json_body(UserCreate)
    with transaction():
        data = services.create_user(
            current_identity.subject, body.username, body.password, request.remote_addr
        )
    return ok(data)


@bp.put("/users/<username>/password")
@token_required(ADMIN)
@spec.validate(
    json=PasswordReset, resp=Resp(HTTP_200=Envelope[UserOut], **ERRORS), tags=TAGS, security=BEARER
)
def reset_password(username: str) -> Response:
    """A new password; the account's tokens stop working."""
    body = json_body(PasswordReset)
    with transaction():
        data = services.reset_password(
            current_identity.subject, username, body.password, request.remote_addr
        )
    return ok(data)


@bp.post("/users/<username>/disable")
@token_required(ADMIN)
@spec.validate(resp=Resp(HTTP_200=Envelope[UserOut], **ERRORS), tags=TAGS, security=BEARER)
def disable_user(username: str) -> Response:
    """Disable an account; its tokens stop working."""
    with transaction():
        data = services.set_disabled(current_identity.subject, username, True, request.remote_addr)
    return ok(data)


@bp.post("/users/<username>/enable")
@token_required(ADMIN)
@spec.validate(resp=Resp(HTTP_200=Envelope[UserOut], **ERRORS), tags=TAGS, security=BEARER)
def enable_user(username: str) -> Response:
    """Enable a disabled account again."""
    with transaction():
        data = services.set_disabled(current_identity.subject, username, False, request.remote_addr)
    return ok(data)
