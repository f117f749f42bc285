"""Request and response models of the admin API (the OpenAPI document is built from them)."""

from __future__ import annotations

from pydantic import BaseModel, Field, StrictStr

from berater.http import Strict

SUBJECT_PATTERN = r"^[A-Za-z0-9_:.-]{1,80}$"  # an openid, or user:<username>


class LinkOut(BaseModel):
    link: str = Field(description="open it in WeChat to see the invitation and confirm it")
    role: str
    seq_expires_in: int = Field(description="seconds the link stays valid")


class HolderOut(BaseModel):
    subject: str = Field(description="an openid, or user:<username> for a password account")
    granted_by: str | None = None
    granted_at: str | None = None


class HoldersOut(BaseModel):
    role: str
    holders: list[HolderOut]


class RevokeRequest(Strict):
    """The holder, in the body: an openid in a path would reach the request log."""

    subject: StrictStr = Field(
        min_length=1,
        max_length=80,
        pattern=SUBJECT_PATTERN,
        description="an openid, or user:<username>",
    )


class RevokeOut(BaseModel):
    role: str
    subject: str
    revoked: bool


class AuditQuery(Strict):
    page: int = Field(1, ge=1, le=1_000_000)
    per_page: int = Field(50, ge=1, le=100)


class AuditEntryOut(BaseModel):
    id: int
    at: str | None = None
    actor: str = Field(description='who: a subject, or "cli"')
    action: str = Field(
        description="grant, revoke, user_create, user_reset, user_disable, user_enable, "
        "admission_import, nova_cancel or qna_rebuild"
    )
    target: str = Field(description="to whom: a subject or a username")
    role: str | None = None
    ip: str | None = None


class AuditOut(BaseModel):
    items: list[AuditEntryOut]
    page: int
    per_page: int
    total: int


class UserCreate(Strict):
    # Lengths are checked by the password rules, which answer with a clearer message.
    username: StrictStr = Field(min_length=1, max_length=128)
    password: StrictStr = Field(max_length=1024)


class PasswordReset(Strict):
    password: StrictStr = Field(max_length=1024)


class UserOut(BaseModel):
    username: str
    disabled: bool
    created_at: str | None = None
    roles: list[str]


class UsersOut(BaseModel):
    users: list[UserOut]
