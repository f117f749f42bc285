"""Request and response models of the admin API (the OpenAPI document is built from them)."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, Field, StrictStr, field_validator

from berater.http import Strict
from berater.identity import audit

SUBJECT_PATTERN = r"^[A-Za-z0-9_:.-]{1,80}$"  # an openid, or user:<username>
ROLE_PATTERN = r"^[A-Za-z0-9_]{1,32}$"
DIGEST_PATTERN = r"^[0-9a-f]{64}$"


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


class AuditFilterQuery(Strict):
    """Which audit rows: every field given must match. Times without an offset are UTC."""

    actor: StrictStr | None = Field(
        None, pattern=SUBJECT_PATTERN, description='who acted: a subject, or "cli"'
    )
    target: StrictStr | None = Field(
        None,
        pattern=SUBJECT_PATTERN,
        description="to whom: a subject, a username or invite:<digest start>; "
        "user:<name> also matches the account's own changes",
    )
    action: StrictStr | None = Field(None, description=", ".join(audit.ACTION_ORDER))
    role: StrictStr | None = Field(None, pattern=ROLE_PATTERN)
    since: datetime | None = Field(None, alias="from", description="at or after (ISO 8601)")
    until: datetime | None = Field(None, alias="to", description="before (ISO 8601)")

    @field_validator("action")
    @classmethod
    def _known_action(cls, value: str | None) -> str | None:
        if value is not None and value not in audit.ACTIONS:
            raise ValueError(f"one of {', '.join(audit.ACTION_ORDER)}")
        return value

    def to_filter(self) -> audit.Filter:
        return audit.Filter(
            actor=self.actor,
            target=self.target,
            action=self.action,
            role=self.role,
            since=_naive_utc(self.since),
            until=_naive_utc(self.until),
        )


class AuditQuery(AuditFilterQuery):
    page: int = Field(1, ge=1, le=1_000_000)
    per_page: int = Field(50, ge=1, le=100)


def _naive_utc(moment: datetime | None) -> datetime | None:
    """As the audit rows store time: naive UTC (a time without an offset is taken as UTC)."""
    if moment is None or moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


class AuditEntryOut(BaseModel):
    id: int
    at: str | None = None
    actor: str = Field(description='who: a subject, or "cli"')
    action: str = Field(description=", ".join(audit.ACTION_ORDER))
    target: str = Field(
        description="to whom: a subject, a username, invite:<digest start>, a student number "
        "(nova_cancel), an import's counts (admission_import) or the Q&A index file's name "
        "(qna_rebuild)"
    )
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


class PendingOut(BaseModel):
    digest: str = Field(description="SHA-256 of the link's sequence: how to cancel it")
    audit_target: str = Field(description="how the audit trail names it")
    role: str
    inviter: str
    created_at: str
    expires_at: str


class PendingListOut(BaseModel):
    invitations: list[PendingOut]


class PasswordRulesOut(BaseModel):
    min_length: int
    max_length: int
    not_common: bool = Field(description="not in the list of common passwords")
    not_username: bool = Field(description="does not contain the username")
    username_min: int
    username_max: int
    username_pattern: str = Field(description="after lower-casing")
