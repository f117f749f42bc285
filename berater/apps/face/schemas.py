"""Query and answer models of the face API; filters and fields are checked here, at the edge.

A query must single out a small group of the admission list (README, "The face app's
narrowing rules"): each filter holds at most MAX_TERMS terms; a wildcard term must hold
enough characters besides `*` for its field (RULES); department and province are named
whole. Filters combine with AND, so a second filter only narrows.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from pydantic import BaseModel, Field, ValidationInfo, field_validator, model_validator

from berater.http import ErrorOut, Strict

# Columns the photo app may ask for; `id_card` is masked unless FACE_SEE_ID_CARDS.
FIELDS = ("stuid", "name", "origin", "gender", "department", "admission_id", "id_card")
FILTERS = ("department", "origin", "name", "admission_id", "stuid")
MAX_TERMS = 5  # terms in one comma-separated filter
MAX_TERM = 64  # characters in one term
MAX_PER_PAGE = 100
FILTER_CHARS = 1024  # a filter's whole text, empty items and spaces included
WILDCARD = "*"


@dataclass(frozen=True)
class Rule:
    """How a filter's wildcard terms must narrow: `min_chars` characters besides `*` (None:
    no wildcard at all, name the value whole), and why, for the 400's message."""

    min_chars: int | None
    why: str


# The figures are argued in README.md ("The face app's narrowing rules").
RULES: dict[str, Rule] = {
    "stuid": Rule(10, "student numbers are 10-12 digits: at most 2 may be left open"),
    "admission_id": Rule(12, "admission numbers are 14 digits: at most 2 may be left open"),
    "name": Rule(2, "one character is a surname or a common given name"),
    "department": Rule(None, "a department is named whole"),
    "origin": Rule(None, "a province is named whole"),
}


def split_terms(text: str) -> list[str]:
    """`a,b*,*c*` -> ["a", "b*", "*c*"]; ValueError on a `*` inside a term or too many terms.

    Empty items (`a,,b`) are dropped, as the original app sent trailing commas.
    """
    terms = [item.strip() for item in text.split(",") if item.strip()]
    if len(terms) > MAX_TERMS:
        raise ValueError(f"at most {MAX_TERMS} comma-separated values")
    for term in terms:
        if len(term) > MAX_TERM:
            raise ValueError(f"a value is longer than {MAX_TERM} characters")
        if WILDCARD in term.strip(WILDCARD):
            raise ValueError(f"{term!r}: '*' is allowed only at the start or the end")
    return terms


def split_fields(text: str | None) -> list[str]:
    """`name, stuid,name` -> ["name", "stuid"]: request order, no repeats."""
    return list(dict.fromkeys(f.strip() for f in (text or "").split(",") if f.strip()))


def matches_all(term: str) -> bool:
    """A term of wildcards only (`*`, `**`) matches every row."""
    return not term.strip(WILDCARD)


def is_wildcard(term: str) -> bool:
    return term.startswith(WILDCARD) or term.endswith(WILDCARD)


def narrowing_chars(term: str) -> int:
    """The characters of a term that narrow a match: not `*`, not spaces, not control or
    format characters (MariaDB's collation may ignore those, so they must not count)."""
    return sum(
        1
        for ch in term.strip(WILDCARD)
        if not ch.isspace() and unicodedata.category(ch)[0] not in "CZ"
    )


def check_rule(field: str, terms: list[str]) -> None:
    """ValueError naming the rule when a wildcard term of `field` narrows too little.

    A lone `*` passes here: it matches every row, so it narrows nothing, and the query
    must then narrow by another filter (StudentsQuery.check_narrowing).
    """
    rule = RULES[field]
    for term in terms:
        if not is_wildcard(term) or matches_all(term):
            continue
        if rule.min_chars is None:
            raise ValueError(f"{term!r}: no '*' in {field}; {rule.why}")
        if narrowing_chars(term) < rule.min_chars:
            raise ValueError(
                f"{term!r}: a value with '*' needs at least {rule.min_chars} characters "
                f"besides '*' in {field}; {rule.why}"
            )


class StudentsQuery(Strict):
    """Filters are comma-separated lists of at most MAX_TERMS values; a value of `stuid`,
    `admission_id` or `name` may start or end with `*` if it holds enough other characters."""

    department: str | None = Field(
        None, max_length=FILTER_CHARS, description="whole names, e.g. 软件学院,文学院"
    )
    origin: str | None = Field(
        None, max_length=FILTER_CHARS, description="whole province names, e.g. 江苏,浙江"
    )
    name: str | None = Field(
        None, max_length=FILTER_CHARS, description="e.g. 王伟,李娜*: `*` with 2+ characters"
    )
    admission_id: str | None = Field(
        None,
        max_length=FILTER_CHARS,
        description="e.g. 26320102000001,263201020001*: `*` with 12+ digits",
    )
    stuid: str | None = Field(
        None,
        max_length=FILTER_CHARS,
        description="e.g. 2026000123,2026000123*: `*` with 10+ digits",
    )
    field: str | None = Field(
        None, max_length=512, description=f"comma-separated columns of {', '.join(FIELDS)}"
    )
    page: int = Field(1, ge=1, le=1_000_000)
    per_page: int = Field(100, ge=1, le=MAX_PER_PAGE)

    @field_validator(*FILTERS)
    @classmethod
    def check_terms(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            check_rule(str(info.field_name), split_terms(value))
        return value

    @field_validator("field")
    @classmethod
    def check_fields(cls, value: str | None) -> str | None:
        unknown = [f for f in split_fields(value) if f not in FIELDS]
        if unknown:
            raise ValueError(
                f"unknown field {', '.join(map(repr, unknown))}; allowed: {', '.join(FIELDS)}"
            )
        return value

    @model_validator(mode="after")
    def check_narrowing(self) -> StudentsQuery:
        # A filter narrows only when it has terms and none of them matches everything.
        if not any(terms and not any(map(matches_all, terms)) for terms in self.filters().values()):
            # Never a dump of the admission list: a lone `*` (or no filter) is refused.
            raise ValueError(
                f"name at least one filter ({', '.join(FILTERS)}) that is not a lone '*'"
            )
        return self

    def filters(self) -> dict[str, list[str]]:
        """Each given filter's terms."""
        given = {name: getattr(self, name) for name in FILTERS}
        return {name: split_terms(v) for name, v in given.items() if v is not None}

    def columns(self) -> list[str]:
        """The requested columns in request order, without repeats; every column when none."""
        return split_fields(self.field) or list(FIELDS)


class StudentsOut(BaseModel):
    """The original shape (`students`), with the page beside it."""

    students: list[dict[str, str | None]]
    page: int
    per_page: int
    total: int


class StudentsErrorOut(ErrorOut):
    rows_left: int | None = Field(
        None, description="429: rows left of the hourly budget (a smaller page may still fit)"
    )
