"""Request and response models of the nova API (the OpenAPI document is built from them)."""

from __future__ import annotations

import unicodedata
from typing import Literal

from pydantic import BaseModel, Field, StrictStr, field_validator

from berater.http import Strict
from berater.identifiers import normalise_phone

INTRO_MAX = 200
QQ_PATTERN = r"^[1-9][0-9]{4,11}$"  # QQ numbers: 5 to 12 digits, no leading zero
STUID_PATTERN = r"^[0-9A-Za-z]{1,16}$"


class RegistrationIn(Strict):
    """What the student gives; stuid, name and department come from the admission list."""

    phone: StrictStr = Field(
        min_length=1, max_length=32, description="a mainland mobile number, e.g. 13800138000"
    )
    qq: StrictStr = Field(pattern=QQ_PATTERN, description="a QQ number, 5 to 12 digits")
    intro: StrictStr | None = Field(
        None, max_length=INTRO_MAX, description="a short self-introduction, at most 200 characters"
    )

    @field_validator("phone")
    @classmethod
    def one_mobile_number(cls, value: str) -> str:
        # InvalidPhone is a ValueError: pydantic reports it as a 400 on the field.
        return normalise_phone(value)

    @field_validator("intro")
    @classmethod
    def printable_intro(cls, value: str | None) -> str | None:
        if value is None:
            return None
        # Control characters (CR/LF included) and line separators could forge lines in an
        # export or a log viewer; an intro is one short paragraph.
        if any(unicodedata.category(ch) in {"Cc", "Zl", "Zp"} for ch in value):
            raise ValueError("the self-introduction cannot contain control characters")
        return value.strip() or None


class SourceOut(BaseModel):
    stuid: str
    name: str
    department: str | None = None
    phone: str | None = Field(None, description="the phone of an earlier registration, if any")
    qq: str | None = Field(None, description="the QQ of an earlier registration, if any")


class RegistrationOut(BaseModel):
    stuid: str
    name: str
    department: str | None = None
    phone: str
    qq: str | None = None
    intro: str | None = None
    registered_at: str = Field(description="UTC, ISO 8601")


class AdminRegistrationOut(RegistrationOut):
    cancelled: bool
    updated_at: str = Field(description="UTC, ISO 8601")


class RegistrationsQuery(Strict):
    q: StrictStr | None = Field(
        None, max_length=200, description="part of a name, student number or department"
    )
    status: Literal["active", "cancelled", "all"] = "active"
    department: StrictStr | None = Field(
        None, max_length=64, description="only this department (the whole name)"
    )
    page: int = Field(1, ge=1, le=1_000_000)
    per_page: int = Field(50, ge=1, le=100)


class DepartmentTotal(BaseModel):
    department: str | None = None
    count: int


class RegistrationsOut(BaseModel):
    items: list[AdminRegistrationOut]
    page: int
    per_page: int
    total: int
    totals_by_department: list[DepartmentTotal] = Field(
        description="registrations matching the filter, by department, largest first"
    )


class CancelOut(BaseModel):
    stuid: str
    cancelled: int = Field(description="how many registrations were cancelled")
