"""The admission list for the office: search by name, student number or admission number.

Every page is masked: ID card numbers keep only their region and last four characters, and
the phone of a bound student only its first three and last four digits (`identifiers`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, or_, select

from berater.db import db
from berater.identifiers import mask_id_card, mask_phone
from berater.models import SourceStudent, Student

MAX_PER_PAGE = 100
MAX_QUERY = 64


def search(q: str | None, page: int = 1, per_page: int = 50) -> dict[str, Any]:
    """One page of the rows whose name contains `q`, or whose student or admission number
    starts with it (case as the database compares), ordered by student number; every row
    when `q` is empty. Wildcards in `q` are searched for literally."""
    page = max(1, page)
    per_page = min(max(1, per_page), MAX_PER_PAGE)
    term = (q or "").strip()[:MAX_QUERY]
    conditions = []
    if term:
        conditions.append(
            or_(
                SourceStudent.name.contains(term, autoescape=True),
                SourceStudent.stuid.startswith(term, autoescape=True),
                SourceStudent.admission_id.startswith(term, autoescape=True),
            )
        )
    session = db.session
    total = session.scalar(select(func.count()).select_from(SourceStudent).where(*conditions))
    rows = session.execute(
        select(SourceStudent, Student.phone)
        .outerjoin(Student, Student.id_card == SourceStudent.id_card)
        .where(*conditions)
        .order_by(SourceStudent.stuid, SourceStudent.admission_id, SourceStudent.id_card)
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    return {
        "items": [
            {
                "id_card": mask_id_card(row.id_card),
                "stuid": row.stuid,
                "admission_id": row.admission_id,
                "name": row.name,
                "gender": row.gender,
                "origin": row.origin,
                "department": row.department,
                "bound": phone is not None,
                "phone": mask_phone(phone),
            }
            for row, phone in rows
        ],
        "q": term,
        "page": page,
        "per_page": per_page,
        "total": int(total or 0),
        "pages": max(1, -(-int(total or 0) // per_page)),
    }
