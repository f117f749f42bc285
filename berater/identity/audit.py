"""The audit trail: role grants and revocations, password-account changes, admission-list
imports from the console, nova cancellations by an admin and rebuilds of the Q&A index.

Rows are added inside the caller's transaction, so an audit row exists exactly when the
change it describes was committed. Rows hold openids: they are listed to admins only and
never logged.
"""

from __future__ import annotations

from sqlalchemy import func, select

from berater.db import db
from berater.models import AuditLog

GRANT, REVOKE = "grant", "revoke"
USER_CREATE, USER_RESET = "user_create", "user_reset"
USER_DISABLE, USER_ENABLE = "user_disable", "user_enable"
# An admission-list import from the console (target: its counts), a nova registration
# cancelled by an admin (target: the student number), a rebuild of the Q&A index (target:
# the index file's name).
ADMISSION_IMPORT, NOVA_CANCEL = "admission_import", "nova_cancel"
QNA_REBUILD = "qna_rebuild"
ACTIONS = frozenset(
    {
        GRANT,
        REVOKE,
        USER_CREATE,
        USER_RESET,
        USER_DISABLE,
        USER_ENABLE,
        ADMISSION_IMPORT,
        NOVA_CANCEL,
        QNA_REBUILD,
    }
)
CLI_ACTOR = "cli"
MAX_PAGE_SIZE = 100


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


def entries(page: int = 1, per_page: int = 50) -> tuple[list[AuditLog], int]:
    """One page of the trail, newest first, and the total number of rows."""
    page, per_page = max(1, page), min(max(1, per_page), MAX_PAGE_SIZE)
    session = db.session
    total = session.scalar(select(func.count()).select_from(AuditLog)) or 0
    rows = session.scalars(
        select(AuditLog)
        .order_by(AuditLog.at.desc(), AuditLog.id.desc())
        .limit(per_page)
        .offset((page - 1) * per_page)
    )
    return list(rows), total
