"""Roles, the audit trail and password accounts, as admins manage them over the API.

Every change is written to the audit trail in the caller's transaction. Nothing here logs
an openid: holders and audit rows are returned to admins only.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from berater.admin import export
from berater.db import db
from berater.errors import BadRequest, Conflict, NotFound
from berater.identity import accounts, audit, subjects
from berater.identity.roles import GRANTABLE
from berater.identity.subjects import ACCOUNT_PREFIX, account_subject
from berater.models import AuditLog, AuthUser, Privilege

MAX_EXPORT = 10_000  # audit rows in one CSV file


def check_role(role: str) -> str:
    """`role` when it can be granted; BadRequest (without echoing the input) otherwise."""
    if role not in GRANTABLE:
        raise BadRequest(f"unknown role; grantable roles: {', '.join(sorted(GRANTABLE))}")
    return role


def iso(moment: datetime | None) -> str | None:
    """A stored naive-UTC time as ISO 8601 with a Z."""
    return None if moment is None else moment.replace(microsecond=0).isoformat() + "Z"


# -- roles ---------------------------------------------------------------------------------------


def holders(role: str) -> dict[str, Any]:
    """Who holds `role`, oldest grant first."""
    check_role(role)
    rows = db.session.scalars(
        select(Privilege).where(Privilege.role == role).order_by(Privilege.granted_at, Privilege.id)
    )
    return {
        "role": role,
        "holders": [
            {"subject": r.openid, "granted_by": r.granted_by, "granted_at": iso(r.granted_at)}
            for r in rows
        ],
    }


def revoke(actor: str, role: str, subject: str, ip: str | None) -> dict[str, Any]:
    """Take `role` from `subject` (its tokens lose it at their next check) and audit it."""
    check_role(role)
    subjects.revoke_role(subject, role)
    audit.record(actor, audit.REVOKE, subject, role, ip)
    return {"role": role, "subject": subject, "revoked": True}


# -- audit ---------------------------------------------------------------------------------------


def audit_page(page: int, per_page: int, where: audit.Filter = audit.EVERYTHING) -> dict[str, Any]:
    """One page of the audit rows `where` keeps, newest first."""
    rows, total = audit.entries(page, per_page, where)
    return {
        "items": [_entry(row) for row in rows],
        "page": page,
        "per_page": per_page,
        "total": total,
    }


def audit_csv(where: audit.Filter = audit.EVERYTHING) -> tuple[bytes, int, int]:
    """The audit rows `where` keeps as a CSV file, newest first, at most MAX_EXPORT of them:
    (the file, rows in it, rows kept in all). More than that is cut to the newest; the
    caller says so, and a narrower filter gets the rest."""
    _, total = audit.entries(1, 1, where)
    rows = audit.newest(where, MAX_EXPORT)
    return export.audit_csv(rows), len(rows), total


def _entry(row: AuditLog) -> dict[str, Any]:
    return {
        "id": row.id,
        "at": iso(row.at),
        "actor": row.actor,
        "action": row.action,
        "target": row.target,
        "role": row.role,
        "ip": row.ip,
    }


# -- password accounts ---------------------------------------------------------------------------


def create_user(actor: str, username: str, password: str, ip: str | None) -> dict[str, Any]:
    """A new account (password rules apply; a taken name is a 409), audited."""
    try:
        user = accounts.create_user(username, password)
    except IntegrityError:
        # Two admins creating the same name at once: the second insert hits the primary key.
        raise Conflict("that username is taken") from None
    audit.record(actor, audit.USER_CREATE, user.username, ip=ip)
    return _user(user, held_roles(user.username))


def reset_password(actor: str, username: str, password: str, ip: str | None) -> dict[str, Any]:
    """A new password; every token of the account stops working. Audited."""
    accounts.reset_password(username, password)
    name = accounts.normalise_username(username)
    audit.record(actor, audit.USER_RESET, name, ip=ip)
    return user(name)


def set_disabled(actor: str, username: str, disabled: bool, ip: str | None) -> dict[str, Any]:
    """Disable (signing the account out everywhere) or enable an account. Audited."""
    accounts.set_disabled(username, disabled)
    name = accounts.normalise_username(username)
    action = audit.USER_DISABLE if disabled else audit.USER_ENABLE
    audit.record(actor, action, name, ip=ip)
    return user(name)


def user(username: str) -> dict[str, Any]:
    """One account with the roles it holds."""
    name = accounts.normalise_username(username)
    row = db.session.get(AuthUser, name)
    if row is None:
        raise NotFound("no such account")
    return _user(row, held_roles(name))


def held_roles(username: str) -> list[str]:
    """The roles the account `username` holds, by name (a new account may hold roles granted
    to its name before such grants were refused)."""
    return sorted(
        db.session.scalars(
            select(Privilege.role).where(Privilege.openid == account_subject(username))
        )
    )


def users() -> dict[str, Any]:
    """Every account, by name, with the roles each holds."""
    held: dict[str, list[str]] = {}
    for subject, role in db.session.execute(
        select(Privilege.openid, Privilege.role).where(Privilege.openid.startswith(ACCOUNT_PREFIX))
    ):
        held.setdefault(subject.removeprefix(ACCOUNT_PREFIX), []).append(role)
    return {
        "users": [_user(row, sorted(held.get(row.username, []))) for row in accounts.list_users()]
    }


def _user(row: AuthUser, roles: list[str]) -> dict[str, Any]:
    return {
        "username": row.username,
        "disabled": row.disabled,
        "created_at": iso(row.created_at),
        "roles": roles,
    }


def password_rules() -> dict[str, Any]:
    """The rules a new password and username must follow, to show before the first try."""
    return dataclasses.asdict(accounts.PASSWORD_RULES)
