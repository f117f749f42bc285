"""The admission-list query behind the photo app: filters, allowlisted columns, pages."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from flask import current_app
from sqlalchemy import ColumnElement, and_, func, or_, select

from berater.apps.face.schemas import FIELDS, WILDCARD, matches_all
from berater.db import db
from berater.identifiers import mask_id_card
from berater.models import SourceStudent

# Not a LIKE special on SQLite or MariaDB, and never a backslash: MariaDB reads backslashes
# in string literals, so "\\" as ESCAPE would mean different things on the two databases.
ESCAPE = "!"


def like_pattern(term: str) -> str | None:
    """The LIKE pattern of a term with `*` at either end, or None for a term without `*`.

    `%`, `_` and the escape character itself match only literally.
    """
    starts, ends = term.startswith(WILDCARD), term.endswith(WILDCARD)
    if not (starts or ends):
        return None
    core = term.strip(WILDCARD)
    for special in (ESCAPE, "%", "_"):
        core = core.replace(special, ESCAPE + special)
    return ("%" if starts else "") + core + ("%" if ends else "")


def term_filter(column: Any, terms: Sequence[str]) -> ColumnElement[bool] | None:
    """`column` equal to any exact term or LIKE any wildcard term; None when a term is `*`."""
    if not terms or any(map(matches_all, terms)):
        return None
    exact = [t for t in terms if like_pattern(t) is None]
    # Exact terms in one IN (an index lookup each); prefixes LIKE 'abc%' use the index too.
    clauses: list[ColumnElement[bool]] = [column.in_(exact)] if exact else []
    clauses += [_like(column, t, p) for t in terms if (p := like_pattern(t)) is not None]
    return or_(*clauses)


def _like(column: Any, term: str, pattern: str) -> ColumnElement[bool]:
    """LIKE, plus a range SQLite can search its index with for a prefix of digits.

    SQLite's LIKE is case-insensitive, so it never uses a (case-sensitive) index for
    `LIKE '2632%'`; MariaDB does. For digits case does not matter, so the range
    `'2632' <= x < '2633'` selects exactly the rows the LIKE does, through the index.
    """
    like = column.like(pattern, escape=ESCAPE)
    core = term.rstrip(WILDCARD)
    if term.startswith(WILDCARD) or not (core.isascii() and core.isdigit()):
        return like
    if db.session.get_bind().dialect.name != "sqlite":
        return like  # MariaDB turns the LIKE into an index range itself
    upper = core[:-1] + chr(ord(core[-1]) + 1)  # "2639" -> "263:" (":" follows "9" in ASCII)
    return and_(like, column >= core, column < upper)


def find_students(
    filters: Mapping[str, Sequence[str]], fields: Sequence[str], page: int, per_page: int
) -> dict[str, Any]:
    """One page of the admission list matching every filter, ordered by admission number.

    `data.students` keeps the original app's shape; `page`, `per_page` and `total` are
    beside it. ID card numbers are masked unless FACE_SEE_ID_CARDS is on.
    """
    unknown = [f for f in fields if f not in FIELDS]
    if unknown:  # the schema checks this; a second caller of this function must too
        raise ValueError(f"unknown fields: {', '.join(unknown)}")
    conditions = [
        clause
        for name, terms in filters.items()
        if (clause := term_filter(getattr(SourceStudent, name), terms)) is not None
    ]
    where = and_(*conditions) if conditions else and_(True)
    total = db.session.scalar(select(func.count()).select_from(SourceStudent).where(where))
    columns = [getattr(SourceStudent, f) for f in fields]
    rows = db.session.execute(
        select(*columns)
        .where(where)
        # Unique admission numbers, then the primary key: pages never overlap or skip.
        .order_by(SourceStudent.admission_id, SourceStudent.id_card)
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    see_cards = bool(current_app.config["FACE_SEE_ID_CARDS"])
    students = []
    for row in rows:
        record = dict(zip(fields, row, strict=True))
        if "id_card" in record and not see_cards:
            record["id_card"] = mask_id_card(record["id_card"])
        students.append(record)
    return {"students": students, "page": page, "per_page": per_page, "total": int(total or 0)}
