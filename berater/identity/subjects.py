"""Who a subject is: its roles and the profile a token carries, and role grants."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import delete, select
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError

from berater.db import db
from berater.errors import BadRequest, NotFound
from berater.identity import revocation
from berater.identity.roles import CANDIDATE, GRANTABLE, STUDENT
from berater.models import AuthUser, Candidate, Privilege, SourceStudent, Student

# Roles that come from binding, not from a grant.
ACCOUNT_PREFIX = "user:"


def account_subject(username: str) -> str:
    """The token subject of a password account; never collides with an openid."""
    return f"{ACCOUNT_PREFIX}{username}"


def roles_for(subject: str) -> tuple[tuple[str, ...], dict[str, Any]]:
    """The roles `subject` holds now, and the profile a token of it carries."""
    session = db.session
    roles = set(session.scalars(select(Privilege.role).where(Privilege.openid == subject)))
    profile: dict[str, Any] = {}
    if not subject.startswith(ACCOUNT_PREFIX):
        row = session.execute(
            select(SourceStudent.stuid, SourceStudent.admission_id)
            .join(Student, Student.id_card == SourceStudent.id_card)
            .where(Student.openid == subject)
        ).first()
        if row is not None:
            roles.add(STUDENT)
            profile = {"stuid": row.stuid, "admission_id": row.admission_id}
        if session.get(Candidate, subject) is not None:
            roles.add(CANDIDATE)
    return tuple(sorted(roles)), profile


def grant_role(subject: str, role: str, granted_by: str | None = None) -> bool:
    """Give `role` to `subject`; False when it already held it. The caller commits; the
    subject's tokens pick the role up at their next check after the commit.

    A `user:<name>` subject must be an existing account (NotFound otherwise), so that a role
    cannot wait for whoever creates that name later. An openid cannot be checked: WeChat
    users appear when they first sign in.
    """
    _check_grantable(role)
    session = db.session
    if subject.startswith(ACCOUNT_PREFIX):
        name = subject.removeprefix(ACCOUNT_PREFIX)
        account = session.get(AuthUser, name)
        if account is None or account.username != name:  # exactly: MariaDB ignores case
            raise NotFound("no such account; create it before granting it a role")
    exists = session.scalar(
        select(Privilege.id).where(Privilege.openid == subject, Privilege.role == role)
    )
    if exists is not None:
        return False
    try:
        with session.begin_nested():  # a concurrent grant of the same role wins the race
            session.add(Privilege(openid=subject, role=role, granted_by=granted_by))
    except IntegrityError:
        return False
    revocation.roles_changed_after_commit(subject)
    return True


def revoke_role(subject: str, role: str) -> None:
    """Take `role` from `subject`; its tokens lose the role at their next check after the
    caller commits (the mark follows the commit: berater.identity.revocation)."""
    _check_grantable(role)
    result = db.session.execute(
        delete(Privilege).where(Privilege.openid == subject, Privilege.role == role)
    )
    if not cast(CursorResult[Any], result).rowcount:  # a DELETE's result counts its rows
        raise NotFound(f"that subject does not hold the role {role!r}")
    revocation.roles_changed_after_commit(subject)


def _check_grantable(role: str) -> None:
    if role not in GRANTABLE:
        raise BadRequest(f"unknown role {role!r}; grantable: {', '.join(sorted(GRANTABLE))}")
