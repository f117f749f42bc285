"""The audit trail: role grants and revocations, invitation links, password-account changes,
admission-list imports from the console, nova cancellations by an admin and rebuilds of the
Q&A index.

Rows are added inside the caller's transaction, so an audit row exists exactly when the
change it describes was committed. Rows hold openids: they are listed to admins only and
never logged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, func, or_, select

from berater.db import db
from berater.identity.subjects import ACCOUNT_PREFIX
from berater.models import AuditLog

GRANT, REVOKE = "grant", "revoke"
USER_CREATE, USER_RESET = "user_create", "user_reset"
USER_DISABLE, USER_ENABLE = "user_disable", "user_enable"
INVITE_CREATE, INVITE_CANCEL = "invite_create", "invite_cancel"
# An admission-list import from the console (target: its counts), a nova registration
# cancelled by an admin (target: the student number), a rebuild of the Q&A index (target:
# the index file's name).
ADMISSION_IMPORT, NOVA_CANCEL = "admission_import", "nova_cancel"
QNA_REBUILD = "qna_rebuild"
# In the order a page lists them.
ACTION_ORDER = (
    GRANT,
    REVOKE,
    INVITE_CREATE,
    INVITE_CANCEL,
    USER_CREATE,
    USER_RESET,
    USER_DISABLE,
    USER_ENABLE,
    ADMISSION_IMPORT,
    NOVA_CANCEL,
    QNA_REBUILD,
)
ACTIONS = frozenset(ACTION_ORDER)
CLI_ACTOR = "cli"
MAX_PAGE_SIZE = 100


@dataclass(frozen=True)
class Filter:
    """Which rows to show; every field given must match (None: any).

    `since` and `until` are naive UTC, as stored: `since` <= at < `until`. A `target` of
    `user:<name>` also matches the rows of the account's own changes, which name it bare
    (`user_create` and the like target the username), so the filter shows all that
    happened to one holder.
    """

    actor: str | None = None
    target: str | None = None
    action: str | None = None
    role: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def apply(self, query: Select) -> Select:
        """`query` narrowed to the rows this filter keeps."""
        if self.actor is not None:
            query = query.where(AuditLog.actor == self.actor)
        if self.target is not None:
            names = [self.target]
            if self.target.startswith(ACCOUNT_PREFIX):
                names.append(self.target.removeprefix(ACCOUNT_PREFIX))
            query = query.where(or_(*(AuditLog.target == name for name in names)))
        if self.action is not None:
            query = query.where(AuditLog.action == self.action)
        if self.role is not None:
            query = query.where(AuditLog.role == self.role)
        if self.since is not None:
            query = query.where(AuditLog.at >= self.since)
        if self.until is not None:
            query = query.where(AuditLog.at < self.until)
        return query


EVERYTHING = Filter()


def record(
    actor: str, action: str, target: str, role: str | None = None, ip: str | None = None
) -> AuditLog:
    """Add one audit row (flushed, not committed): `actor` did `action` to `target`."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    row = AuditLog(actor=actor, action=action, target=target, role=role, ip=ip)
    db.session.add(row)
    db.session.flush()
    return row


def entries(
    page: int = 1, per_page: int = 50, where: Filter = EVERYTHING
) -> tuple[list[AuditLog], int]:
    """One page of the rows `where` keeps, newest first, and how many it keeps in all."""
    page, per_page = max(1, page), min(max(1, per_page), MAX_PAGE_SIZE)
    session = db.session
    total = session.scalar(where.apply(select(func.count()).select_from(AuditLog))) or 0
    rows = session.scalars(
        _newest_first(where.apply(select(AuditLog))).limit(per_page).offset((page - 1) * per_page)
    )
    return list(rows), total


def newest(where: Filter, limit: int) -> Sequence[AuditLog]:
    """At most `limit` rows that `where` keeps, newest first (for an export)."""
    return list(db.session.scalars(_newest_first(where.apply(select(AuditLog))).limit(limit)))


def _newest_first(query: Select) -> Select:
    return query.order_by(AuditLog.at.desc(), AuditLog.id.desc())
