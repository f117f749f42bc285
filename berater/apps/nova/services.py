"""Club registration: one row per openid in `nova_reg`, cancelled by a flag (the row is kept).

Services add, update and flush; the views own the transaction. Writes that race (a double
registration, a renewal, a cancellation) are single statements guarded by the `deleted` flag
or the primary key, so two parallel requests have exactly one winner.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError

from berater.apps.nova.schemas import STUID_PATTERN
from berater.db import db, utcnow
from berater.errors import BadRequest, Conflict, NotFound
from berater.identifiers import mask_phone
from berater.identity import audit
from berater.models import NovaReg, SourceStudent, Student

STUID = re.compile(STUID_PATTERN)


@dataclass(frozen=True)
class Admission:
    """The admission-list facts a registration copies."""

    stuid: str
    name: str
    department: str | None


@dataclass(frozen=True)
class Notice:
    """Who to tell about a registration change, after the commit."""

    openid: str
    event: str  # "registered" or "cancelled"
    name: str
    stuid: str
    at: datetime


def iso(value: datetime | None) -> str:
    """Naive UTC from the database as ISO 8601 with a Z."""
    return value.replace(microsecond=0).isoformat() + "Z" if value else ""


def admission_of(openid: str) -> Admission:
    """The bearer's admission-list record; 404 when none is bound or it has no stuid yet."""
    row = db.session.execute(
        select(SourceStudent.stuid, SourceStudent.name, SourceStudent.department)
        .join(Student, Student.id_card == SourceStudent.id_card)
        .where(Student.openid == openid)
    ).first()
    if row is None:
        raise NotFound("no admission record is bound to this account")
    if not row.stuid:
        raise NotFound("your admission record has no student number yet")
    return Admission(row.stuid, row.name, row.department)


def source(openid: str) -> dict[str, Any]:
    """Admission facts, with the phone and QQ of an earlier registration to fill the form."""
    admission = admission_of(openid)
    reg = db.session.get(NovaReg, openid)
    return {
        "stuid": admission.stuid,
        "name": admission.name,
        "department": admission.department,
        "phone": reg.phone if reg else None,
        "qq": reg.qq if reg else None,
    }


def describe(reg: NovaReg) -> dict[str, Any]:
    """A registration as the student sees it (their own phone, whole)."""
    return {
        "stuid": reg.stuid,
        "name": reg.name,
        "department": reg.department,
        "phone": reg.phone,
        "qq": reg.qq,
        "intro": reg.intro,
        "registered_at": iso(reg.created_at),
    }


def own(openid: str) -> dict[str, Any]:
    """The bearer's active registration, or 404."""
    reg = db.session.get(NovaReg, openid)
    if reg is None or reg.deleted:
        raise NotFound("you have not registered")
    return describe(reg)


def register(openid: str, phone: str, qq: str, intro: str | None) -> tuple[dict[str, Any], Notice]:
    """Register, or renew a cancelled registration; an active one is a 409."""
    admission = admission_of(openid)
    now = utcnow()
    fields = {
        "stuid": admission.stuid,
        "name": admission.name,
        "department": admission.department,
        "phone": phone,
        "qq": qq,
        "intro": intro,
    }
    session = db.session
    if session.get(NovaReg, openid) is not None:
        # Renewal: only a cancelled row flips, so two parallel renewals have one winner.
        # The registration time is the time of the current registration.
        result = session.execute(
            update(NovaReg)
            .where(NovaReg.openid == openid, NovaReg.deleted.is_(True))
            .values(**fields, deleted=False, created_at=now, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:
            raise Conflict("you have already registered")
    else:
        try:
            with session.begin_nested():  # a parallel first registration wins the race
                session.add(NovaReg(openid=openid, created_at=now, updated_at=now, **fields))
        except IntegrityError:
            raise Conflict("you have already registered") from None
    session.expire_all()
    reg = session.get(NovaReg, openid)
    assert reg is not None
    return describe(reg), Notice(openid, "registered", admission.name, admission.stuid, now)


def cancel_own(openid: str) -> Notice:
    """Cancel the bearer's active registration (the row is kept); 404 when there is none."""
    now = utcnow()
    result = db.session.execute(
        update(NovaReg)
        .where(NovaReg.openid == openid, NovaReg.deleted.is_(False))
        .values(deleted=True, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise NotFound("you have not registered")
    reg = db.session.get(NovaReg, openid)
    assert reg is not None
    return Notice(openid, "cancelled", reg.name, reg.stuid, now)


def cancel_by_stuid(stuid: str) -> list[Notice]:
    """An admin cancels the active registration(s) of a student number; 404 when none."""
    if not STUID.fullmatch(stuid):
        raise BadRequest("a student number is 1 to 16 letters or digits")
    session = db.session
    rows = session.execute(
        select(NovaReg.openid, NovaReg.name).where(
            NovaReg.stuid == stuid, NovaReg.deleted.is_(False)
        )
    ).all()
    now = utcnow()
    notices = []
    for row in rows:
        result = session.execute(
            update(NovaReg)
            .where(NovaReg.openid == row.openid, NovaReg.deleted.is_(False))
            .values(deleted=True, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 1:  # a parallel cancellation may have come first
            notices.append(Notice(row.openid, "cancelled", row.name, stuid, now))
    if not notices:
        raise NotFound("no active registration with that student number")
    return notices


def cancel_by_admin(stuid: str, actor: str, ip: str | None = None) -> list[Notice]:
    """`cancel_by_stuid` by an admin (the API or the console), with its audit row."""
    notices = cancel_by_stuid(stuid)
    audit.record(actor, audit.NOVA_CANCEL, stuid, ip=ip)
    return notices


def _filtered(q: str | None, status: str, department: str | None = None) -> list[Any]:
    conditions: list[Any] = []
    if status != "all":
        conditions.append(NovaReg.deleted.is_(status == "cancelled"))
    if department:
        conditions.append(NovaReg.department == department)
    if q and q.strip():
        term = q.strip()
        conditions.append(
            or_(
                NovaReg.name.contains(term, autoescape=True),
                NovaReg.stuid.contains(term, autoescape=True),
                NovaReg.department.contains(term, autoescape=True),
            )
        )
    return conditions


def registrations(
    q: str | None,
    status: str,
    page: int,
    per_page: int,
    department: str | None = None,
    *,
    mask_phones: bool = False,
) -> dict[str, Any]:
    """One page of registrations, newest first, with the totals by department; the phones
    masked with `mask_phones` (a list on a screen; the exports carry them whole)."""
    session = db.session
    conditions = _filtered(q, status, department)
    total = session.scalar(select(func.count()).select_from(NovaReg).where(*conditions)) or 0
    rows = session.scalars(
        select(NovaReg)
        .where(*conditions)
        .order_by(NovaReg.created_at.desc(), NovaReg.stuid)
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    totals = session.execute(
        select(NovaReg.department, func.count().label("count"))
        .where(*conditions)
        .group_by(NovaReg.department)
        .order_by(func.count().desc(), NovaReg.department)
    ).all()
    return {
        "items": [
            {
                **describe(r),
                "cancelled": r.deleted,
                "updated_at": iso(r.updated_at),
                **({"phone": mask_phone(r.phone)} if mask_phones else {}),
            }
            for r in rows
        ],
        "page": page,
        "per_page": per_page,
        "total": total,
        "totals_by_department": [{"department": d, "count": c} for d, c in totals],
    }


def departments() -> list[str]:
    """Every department that has a registration, active or cancelled, in order (a filter's
    choices)."""
    return list(
        db.session.scalars(
            select(NovaReg.department)
            .where(NovaReg.department.is_not(None))
            .distinct()
            .order_by(NovaReg.department)
        )
    )


def active_registrations() -> list[NovaReg]:
    """Every active registration, by department and student number (for the exports)."""
    return list(
        db.session.scalars(
            select(NovaReg)
            .where(NovaReg.deleted.is_(False))
            .order_by(NovaReg.department, NovaReg.stuid)
        )
    )
