"""One-time invitation links that grant a role (SECURITY.md: invitation links).

A link carries a sequence of 256 random bits. The store keeps the invitation under the
SHA-256 of the sequence, never the sequence itself, for INVITE_TTL (30 min). Confirming
takes the invitation and leaves a "used" mark in one Lua script, so of any number of
parallel confirmations exactly one gets the invitation; the others, and any later opening
while the mark lasts, see 410. An unknown, expired or malformed sequence is a 404; a
malformed one is refused before the store is asked.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from flask import current_app
from sqlalchemy.exc import IntegrityError

from berater.admin.services import check_role
from berater.db import db
from berater.errors import Conflict, Forbidden, Gone, NotFound
from berater.extensions import store
from berater.identity import audit, roles, subjects
from berater.identity.subjects import ACCOUNT_PREFIX
from berater.models import AuthUser

AREA = "invite"
USED_AREA = "invite-used"
SEQ_BYTES = 32  # 256 bits
SEQ = re.compile(r"[A-Za-z0-9_-]{43}")  # token_urlsafe(32): 43 characters, no padding
INVITER_ROLE = roles.ADMIN

# KEYS[1] the invitation, KEYS[2] its used mark; ARGV[1] the mark, ARGV[2] its lifetime (ms).
CONSUME_LUA = """
local invitation = redis.call('GET', KEYS[1])
if invitation then
  redis.call('DEL', KEYS[1])
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
  return {1, invitation}
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  return {2, ''}
end
return {0, ''}
"""


@dataclass(frozen=True)
class Invitation:
    """What a link offers: a role, from an inviter, for so many more seconds."""

    role: str
    inviter: str
    expires_in: int

    @property
    def inviter_label(self) -> str:
        """How the invitee sees the inviter: an account's name, never an openid."""
        if self.inviter.startswith(ACCOUNT_PREFIX):
            return self.inviter.removeprefix(ACCOUNT_PREFIX)
        return "微信管理员 · a WeChat administrator"


@dataclass(frozen=True)
class Accepted:
    """The outcome of a confirmation: the role, and whether the invitee was new to it."""

    role: str
    added: bool


def create(inviter: str, role: str) -> tuple[str, int]:
    """A new invitation for `role` from `inviter`: (sequence, lifetime in seconds)."""
    check_role(role)
    seq = secrets.token_urlsafe(SEQ_BYTES)
    ttl = float(current_app.config["INVITE_TTL"])
    value = json.dumps({"role": role, "inviter": inviter, "at": int(time.time())})
    store.set(AREA, _digest(seq), value, ttl=ttl)
    return seq, math.ceil(ttl)


def peek(seq: str) -> Invitation:
    """The invitation behind `seq`, left in place (the preview grants nothing)."""
    digest = _digest(check_seq(seq))
    raw = store.get(AREA, digest)
    if raw is None:
        raise _missing(store.get(USED_AREA, digest) is not None)
    invitation = _parse(raw, store.ttl(AREA, digest))
    _check_inviter(invitation.inviter)
    return invitation


def accept(seq: str, subject: str, ip: str | None) -> Accepted:
    """Take the invitation (once, atomically) and grant its role to `subject`; audited.

    The caller commits. If the commit fails the invitation stays used: single use is the
    property to keep, and the inviter can make a new link.
    """
    digest = _digest(check_seq(seq))
    status, raw = _consume(digest)
    if status != 1:
        raise _missing(used=status == 2)
    invitation = _parse(raw, 0)
    _check_inviter(invitation.inviter)
    try:
        added = subjects.grant_role(subject, invitation.role, granted_by=invitation.inviter)
    except IntegrityError:
        # Another link for the same role, confirmed by the same person at the same moment,
        # inserted the row first (unique openid + role). The caller rolls back.
        raise Conflict("you already hold this role") from None
    if added:
        audit.record(invitation.inviter, audit.GRANT, subject, invitation.role, ip)
    return Accepted(invitation.role, added)


def check_seq(seq: str) -> str:
    """`seq` when it has the shape of a sequence; the same 404 as an unknown one otherwise."""
    if not isinstance(seq, str) or not SEQ.fullmatch(seq):
        raise _missing(used=False)
    return seq


def _digest(seq: str) -> str:
    return hashlib.sha256(seq.encode("ascii")).hexdigest()


def _missing(used: bool) -> Gone | NotFound:
    if used:
        return Gone("this invitation was already used; ask the administrator for a new link")
    return NotFound("no such invitation, or it has expired; ask the administrator for a new link")


def _consume(digest: str) -> tuple[int, str]:
    state = current_app.extensions.setdefault("berater.admin", {})
    if "consume" not in state:
        state["consume"] = store.script(CONSUME_LUA)
    ttl_ms = int(float(current_app.config["INVITE_TTL"]) * 1000)
    mark = json.dumps({"used_at": int(time.time())})
    reply = state["consume"](
        keys=[store.key(AREA, digest), store.key(USED_AREA, digest)], args=[mark, ttl_ms]
    )
    return int(reply[0]), str(reply[1])


def _parse(raw: str, expires_in: float | None) -> Invitation:
    data: dict[str, Any] = json.loads(raw)
    return Invitation(str(data["role"]), str(data["inviter"]), int(expires_in or 0))


def _check_inviter(inviter: str) -> None:
    """A link dies with its inviter's admin role (or account): checked at preview and grant."""
    roles, _ = subjects.roles_for(inviter)
    allowed = INVITER_ROLE in roles
    if allowed and inviter.startswith(ACCOUNT_PREFIX):
        account = db.session.get(AuthUser, inviter.removeprefix(ACCOUNT_PREFIX))
        allowed = account is not None and not account.disabled
    if not allowed:
        raise Forbidden("the administrator who made this link may no longer grant roles")
