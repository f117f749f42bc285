"""The tables: bindings, roles, accounts, the admission list, audit rows.

Identity data (ID cards, phones) never leaves through a log."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import (
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from berater.db import Base, db, utcnow

OPENID = 64  # WeChat openids are 28 characters; room for other platforms
SUBJECT = 80  # an openid, or "user:<username>"
if TYPE_CHECKING:
    Model = Base  # what db.Model is built from; type checkers cannot follow the factory
else:
    Model = db.Model

# Chinese names need 4-byte-safe UTF-8 on MySQL and MariaDB.
MYSQL = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci"}


class Timestamps:
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime, default=utcnow, onupdate=utcnow, nullable=False
    )


class SourceStudent(Timestamps, Model):
    """The admission list, imported by the admissions office."""

    __tablename__ = "source_student"
    __table_args__ = MYSQL

    id_card: Mapped[str] = mapped_column(String(18), primary_key=True)
    stuid: Mapped[str | None] = mapped_column(String(16), unique=True)
    admission_id: Mapped[str | None] = mapped_column(String(20), unique=True)
    name: Mapped[str] = mapped_column(String(32), nullable=False)
    origin: Mapped[str | None] = mapped_column(String(32), index=True)
    gender: Mapped[str | None] = mapped_column(String(4))
    department: Mapped[str | None] = mapped_column(String(64), index=True)


class Student(Timestamps, Model):
    """A WeChat user bound to one row of the admission list."""

    __tablename__ = "student"
    __table_args__ = MYSQL

    openid: Mapped[str] = mapped_column(String(OPENID), primary_key=True)
    phone: Mapped[str] = mapped_column(String(11), nullable=False)
    # unique: one ID card is bound to at most one openid, also under concurrent bindings
    id_card: Mapped[str] = mapped_column(
        String(18), ForeignKey("source_student.id_card"), unique=True, nullable=False
    )


class Candidate(Timestamps, Model):
    """An exam candidate (考生) who registered their details."""

    __tablename__ = "candidate"
    __table_args__ = MYSQL

    openid: Mapped[str] = mapped_column(String(OPENID), primary_key=True)
    phone: Mapped[str] = mapped_column(String(11), nullable=False)
    name: Mapped[str] = mapped_column(String(32), nullable=False)
    province: Mapped[str] = mapped_column(String(16), nullable=False)
    city: Mapped[str] = mapped_column(String(32), nullable=False)
    score: Mapped[float] = mapped_column(Float, nullable=False)
    subject: Mapped[str] = mapped_column(String(16), nullable=False)


class Privilege(Model):
    """A role held by a subject (an openid or `user:<username>`)."""

    __tablename__ = "privilege"
    __table_args__ = (UniqueConstraint("openid", "role", name="uq_privilege_openid_role"), MYSQL)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    openid: Mapped[str] = mapped_column(String(SUBJECT), nullable=False, index=True)
    role: Mapped[str] = mapped_column(String(32), nullable=False, index=True)
    granted_by: Mapped[str | None] = mapped_column(String(SUBJECT))
    granted_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, nullable=False)


class AuthUser(Timestamps, Model):
    """A username and password account (staff, partner tools)."""

    __tablename__ = "auth_user"
    __table_args__ = MYSQL

    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)


class NovaReg(Timestamps, Model):
    """A club registration; cancelling keeps the row (soft delete)."""

    __tablename__ = "nova_reg"
    __table_args__ = MYSQL

    openid: Mapped[str] = mapped_column(String(OPENID), primary_key=True)
    stuid: Mapped[str] = mapped_column(String(16), nullable=False, index=True)
    name: Mapped[str] = mapped_column(String(32), nullable=False)
    department: Mapped[str | None] = mapped_column(String(64), index=True)
    phone: Mapped[str] = mapped_column(String(11), nullable=False)
    qq: Mapped[str | None] = mapped_column(String(12))
    intro: Mapped[str | None] = mapped_column(Text)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)


# --- audit log (admin invitations, roles and accounts) ---------------------------------------


class AuditLog(Model):
    """One grant, revoke or account change: who did what to whom, when and from where."""

    __tablename__ = "audit_log"
    __table_args__ = MYSQL

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, nullable=False, index=True)
    # The console filters by actor and by target.
    actor: Mapped[str] = mapped_column(String(SUBJECT), nullable=False, index=True)  # or "cli"
    action: Mapped[str] = mapped_column(String(16), nullable=False)
    target: Mapped[str] = mapped_column(String(SUBJECT), nullable=False, index=True)  # or username
    role: Mapped[str | None] = mapped_column(String(32))
    ip: Mapped[str | None] = mapped_column(String(45))  # room for an IPv6 address
