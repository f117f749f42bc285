"""Request and response models for binding a candidate or a student."""

from __future__ import annotations

from pydantic import BaseModel, Field, StrictFloat, StrictInt, StrictStr

from berater.http import Strict

PRINTABLE = r"^[^\x00-\x1f\x7f]+$"


class CandidateIn(Strict):
    """A candidate's details. The phone is the one verified by SMS, not a field."""

    name: StrictStr = Field(min_length=1, max_length=32, pattern=PRINTABLE)
    province: StrictStr = Field(min_length=2, max_length=16, description="e.g. 江苏 or 江苏省")
    city: StrictStr = Field(min_length=1, max_length=32, pattern=PRINTABLE)
    score: StrictFloat | StrictInt = Field(description="the exam score")
    subject: StrictStr = Field(min_length=1, max_length=16)


class CandidatePatch(Strict):
    """Some of a candidate's details; `phone` must be the phone just verified by SMS."""

    name: StrictStr | None = Field(None, min_length=1, max_length=32, pattern=PRINTABLE)
    province: StrictStr | None = Field(None, min_length=2, max_length=16)
    city: StrictStr | None = Field(None, min_length=1, max_length=32, pattern=PRINTABLE)
    score: StrictFloat | StrictInt | None = None
    subject: StrictStr | None = Field(None, min_length=1, max_length=16)
    phone: StrictStr | None = Field(None, max_length=20)


class StudentIn(Strict):
    """The ID card and the student number (学号) or admission number (录取号) to match."""

    id_card: StrictStr = Field(min_length=18, max_length=18)
    id: StrictStr = Field(min_length=1, max_length=20, pattern=r"^[A-Za-z0-9]+$")


class StudentPatch(Strict):
    """A new phone (verified by SMS). `id_card` may be repeated but never changed."""

    phone: StrictStr | None = Field(None, max_length=20)
    id_card: StrictStr | None = Field(None, min_length=18, max_length=18)


class CandidateOut(BaseModel):
    name: str
    province: str
    city: str
    score: float
    subject: str
    phone: str


class SourceOut(BaseModel):
    stuid: str | None
    admission_id: str | None
    name: str
    origin: str | None
    gender: str | None
    department: str | None
    id_card: str | None
    phone: str | None


class BoundOut(BaseModel):
    """A fresh token carrying the new role, and the masked record."""

    token: str
    student: bool
    candidate: bool
    roles: list[str]
    expires_in: int
    record: dict[str, object]
