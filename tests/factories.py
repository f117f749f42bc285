"""Rows for tests, with valid-looking identity data (checksummed ID card numbers)."""

from __future__ import annotations

import itertools
from datetime import date, timedelta

from berater.db import db
from berater.models import AuthUser, Candidate, Privilege, SourceStudent, Student

_seq = itertools.count(1)
WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK = "10X98765432"


def id_card(serial: int | None = None, birth: str | None = None) -> str:
    """A GB 11643 ID card number with a correct check character, unique per serial: the
    sequence digits hold serial % 1000 and the birth date moves on a day per thousand."""
    n = next(_seq) if serial is None else serial
    born = birth or (date(2007, 3, 15) + timedelta(days=n // 1000)).strftime("%Y%m%d")
    body = f"320102{born}{n % 1000:03d}"
    return body + CHECK[sum(int(d) * w for d, w in zip(body, WEIGHTS, strict=True)) % 11]


def source_student(**fields: object) -> SourceStudent:
    n = next(_seq)
    row = SourceStudent(
        id_card=fields.pop("id_card", None) or id_card(n),
        stuid=fields.pop("stuid", f"2026{n:05d}"),
        admission_id=fields.pop("admission_id", f"26320102{n:06d}"),
        name=fields.pop("name", "张三"),
        origin=fields.pop("origin", "江苏"),
        gender=fields.pop("gender", "男"),
        department=fields.pop("department", "计算机科学与技术系"),
        **fields,
    )
    db.session.add(row)
    db.session.flush()
    return row


def student(openid: str, source: SourceStudent | None = None) -> Student:
    source = source or source_student()
    row = Student(openid=openid, phone="13800138000", id_card=source.id_card)
    db.session.add(row)
    db.session.flush()
    return row


def candidate(openid: str) -> Candidate:
    row = Candidate(
        openid=openid,
        phone="13900139000",
        name="李四",
        province="江苏",
        city="南京",
        score=612.5,
        subject="物理类",
    )
    db.session.add(row)
    db.session.flush()
    return row


def privilege(openid: str, role: str) -> Privilege:
    row = Privilege(openid=openid, role=role, granted_by="test")
    db.session.add(row)
    db.session.flush()
    return row


def auth_user(username: str, password: str, disabled: bool = False) -> AuthUser:
    from berater.identity.accounts import _hasher

    row = AuthUser(username=username, password_hash=_hasher().hash(password), disabled=disabled)
    db.session.add(row)
    db.session.flush()
    return row
