"""Query and answer models of the face API; filters and fields are checked here, at the edge."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator, model_validator

from berater.http import Strict

# Columns the photo app may ask for; `id_card` is masked unless FACE_SEE_ID_CARDS.
FIELDS = ("stuid", "name", "origin", "gender", "department", "admission_id", "id_card")
FILTERS = ("department", "origin", "name", "admission_id", "stuid")
MAX_TERMS = 200  # terms in one comma-separated filter
MAX_TERM = 64  # characters in one term
MAX_PER_PAGE = 500
WILDCARD = "*"


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


class StudentsQuery(Strict):
    """Filters are comma-separated lists; a term may start or end with `*`."""

    department: str | None = Field(None, max_length=4096, description="e.g. 软件学院,文学院")
    origin: str | None = Field(None, max_length=4096, description="province of origin")
    name: str | None = Field(None, max_length=4096, description="e.g. 张*")
    admission_id: str | None = Field(None, max_length=16384, description="e.g. 2632*,26320102*")
    stuid: str | None = Field(
        None, max_length=16384, description="student numbers, like admission_id"
    )
    field: str | None = Field(
        None, max_length=512, description=f"comma-separated columns of {', '.join(FIELDS)}"
    )
    page: int = Field(1, ge=1, le=1_000_000)
    per_page: int = Field(100, ge=1, le=MAX_PER_PAGE)

    @field_validator(*FILTERS)
    @classmethod
    def check_terms(cls, value: str | None) -> str | None:
        if value is not None:
            split_terms(value)
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
