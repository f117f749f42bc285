"""The admission-list query behind the photo app: filters, allowlisted columns, pages, and
the app's hourly budget of rows.

The budget: every answer takes its rows (at least 1: an empty page still answers `total`)
from the app's counter of the current clock hour, `<APP>_ROWS_PER_HOUR` (FACE_ROWS_PER_HOUR).
The count is kept in the store (area "face", key `rows:<app>:<hour>`), taken atomically by
one script: a page that would pass the budget is refused whole (429, Retry-After the
seconds to the hour's end) and takes nothing, never cut short, because the original app
reads a short page as the end of the list. Everyone who queries as the app (its token, or a
person granted its role) spends the same budget.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

from flask import current_app
from sqlalchemy import ColumnElement, and_, func, or_, select

from berater.apps.face.schemas import FIELDS, WILDCARD, matches_all
from berater.db import db
from berater.errors import TooManyRequests
from berater.extensions import store
from berater.identifiers import mask_id_card
from berater.models import SourceStudent

log = logging.getLogger(__name__)

AREA = "face"
HOUR = 3600
clock = time.time  # the budget's clock; tests move it

# KEYS: the app's counter of this hour; ARGV: rows, budget, ms the counter is kept.
# All or nothing: rows that would pass the budget take nothing. Returns {taken, used}.
_SPEND_ROWS = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local rows = tonumber(ARGV[1])
if used + rows > tonumber(ARGV[2]) then return {0, used} end
used = redis.call('INCRBY', KEYS[1], rows)
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return {1, used}
"""

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


def list_students(
    app: str,
    filters: Mapping[str, Sequence[str]],
    fields: Sequence[str],
    page: int,
    per_page: int,
) -> dict[str, Any]:
    """`find_students`, paid for from `app`'s hourly budget; 429 when the page does not fit.

    A spent budget is refused before the database is asked.
    """
    key, seconds_left = _window(app)
    budget = _budget(app)
    used = int(store.get(AREA, key) or 0)
    if used >= budget:
        _refuse(app, budget, used, 1, seconds_left)
    found = find_students(filters, fields, page, per_page)
    rows = max(1, len(found["students"]))
    taken, used = store.script(_SPEND_ROWS)(
        keys=[store.key(AREA, key)],
        args=[rows, budget, math.ceil((seconds_left + 60) * 1000)],  # a minute for clock skew
    )
    if not taken:
        _refuse(app, budget, int(used), rows, seconds_left)
    return found


def rows_used(app: str) -> int:
    """Rows `app` has taken from its budget in this clock hour."""
    key, _ = _window(app)
    return int(store.get(AREA, key) or 0)


def _window(app: str) -> tuple[str, float]:
    """The counter key of `app` for the current clock hour, and the seconds to its end."""
    now = clock()
    hour = int(now // HOUR)
    return f"rows:{app}:{hour}", (hour + 1) * HOUR - now


def _budget(app: str) -> int:
    return int(current_app.config[f"{app.upper()}_ROWS_PER_HOUR"])


def _refuse(app: str, budget: int, used: int, rows: int, seconds_left: float) -> NoReturn:
    """429 with Retry-After to the hour's end, and a warning with the app and the count only
    (never the query's terms: they are personal data)."""
    left = max(0, budget - used)
    log.warning(
        "%s app: hourly row budget of %d: %d rows used this hour, a page of %d refused",
        app,
        budget,
        used,
        rows,
    )
    if left:
        message = (
            f"a page of {rows} rows would pass the hourly budget of {budget} rows "
            f"({left} left this hour); ask for a smaller page or wait"
        )
    else:
        message = f"the hourly budget of {budget} rows is spent; try again after the hour"
    error = TooManyRequests(message, math.ceil(seconds_left))
    error.data = {**error.data, "rows_left": left}
    raise error
