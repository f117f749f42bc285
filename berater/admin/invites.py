"""One-time invitation links that grant a role (SECURITY.md: invitation links).

A link carries a sequence of 256 random bits. The store keeps the invitation under the
SHA-256 of the sequence, never the sequence itself, for INVITE_TTL (30 min). Confirming
takes the invitation and leaves a "used" mark in one Lua script, so of any number of
parallel confirmations exactly one gets the invitation; the others, and any later opening
while the mark lasts, see 410. An unknown, expired or malformed sequence is a 404; a
malformed one is refused before the store is asked.

Admins see the links still pending (`pending()`): a sorted set beside the invitations holds
their digests, scored by expiry, and lives as long as its newest link. Creating, confirming
and cancelling a link each update it in the same script as the invitation itself, and a
listing drops what has expired. The set and the invitations hold the role, the inviter and
the times, never a link. Making a link and cancelling one are audited (`invite_create`,
`invite_cancel`, the target `invite:` and the start of the digest, which the list shows).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import current_app
from sqlalchemy.exc import IntegrityError

from berater.admin.services import check_role
from berater.db import after_commit, db
from berater.errors import Conflict, Forbidden, Gone, NotFound
from berater.extensions import store
from berater.identity import audit, roles, subjects
from berater.identity.subjects import ACCOUNT_PREFIX
from berater.models import AuthUser

AREA = "invite"
USED_AREA = "invite-used"
PENDING_AREA, PENDING_KEY = "invite-pending", "all"  # the sorted set of pending digests
SEQ_BYTES = 32  # 256 bits
SEQ = re.compile(r"[A-Za-z0-9_-]{43}")  # token_urlsafe(32): 43 characters, no padding
DIGEST = re.compile(r"[0-9a-f]{64}")
INVITER_ROLE = roles.ADMIN
MAX_PENDING = 200  # listed at once, newest first
AUDIT_PREFIX, AUDIT_DIGEST = "invite:", 16  # an invitation in the audit trail

# KEYS[1] the invitation, KEYS[2] the pending set; ARGV[1] the invitation, ARGV[2] its
# lifetime (ms), ARGV[3] its digest, ARGV[4] its expiry (ms since the epoch). The set lives
# as long as its newest member (PEXPIRE GT needs Redis 7; the embedded one is 6.2).
CREATE_LUA = """
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[2]) then
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
"""

# KEYS[1] the pending set; ARGV[1] now (ms since the epoch), ARGV[2] how many. Newest first.
PENDING_LUA = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
return redis.call('ZREVRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1)
"""

# KEYS the invitations of the digests in ARGV, then the pending set (last). For each: the
# invitation and its milliseconds left, or '' and 0 when it has gone (confirmed, cancelled,
# expired), which also leaves the set.
READ_LUA = """
local set = KEYS[#KEYS]
local out = {}
for i = 1, #ARGV do
  local invitation = redis.call('GET', KEYS[i])
  local left = redis.call('PTTL', KEYS[i])
  if invitation and left > 0 then
    out[#out + 1] = invitation
    out[#out + 1] = left
  else
    redis.call('ZREM', set, ARGV[i])
    out[#out + 1] = ''
    out[#out + 1] = 0
  end
end
return out
"""

# KEYS[1] the invitation, KEYS[2] the pending set; ARGV[1] its digest. The invitation, gone.
CANCEL_LUA = """
local invitation = redis.call('GET', KEYS[1])
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return invitation
"""

# KEYS[1] the invitation, KEYS[2] its used mark, KEYS[3] the pending set; ARGV[1] the mark,
# ARGV[2] its lifetime (ms), ARGV[3] the digest.
CONSUME_LUA = """
local invitation = redis.call('GET', KEYS[1])
if invitation then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[3], ARGV[3])
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


@dataclass(frozen=True)
class Pending:
    """A link still waiting for its invitee, as the admins' list shows it (never the link)."""

    digest: str
    role: str
    inviter: str
    created_at: datetime  # aware, UTC
    expires_at: datetime  # aware, UTC

    @property
    def audit_target(self) -> str:
        """How the audit trail names this invitation."""
        return audit_target(self.digest)

    def to_dict(self) -> dict[str, Any]:
        """As the API answers it (times in ISO 8601 UTC with a Z)."""
        return {
            "digest": self.digest,
            "audit_target": self.audit_target,
            "role": self.role,
            "inviter": self.inviter,
            "created_at": _iso(self.created_at),
            "expires_at": _iso(self.expires_at),
        }


def create(inviter: str, role: str, ip: str | None = None) -> tuple[str, int]:
    """A new invitation for `role` from `inviter`: (sequence, lifetime in seconds). Audited.

    The caller commits: the invitation is stored once the audit row is committed, so a link
    the caller hands out after the commit works, and none exists that the trail lacks.
    """
    check_role(role)
    seq = secrets.token_urlsafe(SEQ_BYTES)
    digest = _digest(seq)
    ttl = float(current_app.config["INVITE_TTL"])
    now = time.time()
    value = json.dumps({"role": role, "inviter": inviter, "at": int(now)})
    audit.record(inviter, audit.INVITE_CREATE, audit_target(digest), role, ip)
    ttl_ms, expiry_ms = max(1, int(ttl * 1000)), int(now * 1000 + ttl * 1000)

    def store_it() -> None:
        _script("create", CREATE_LUA)(
            keys=[store.key(AREA, digest), _pending_key()],
            args=[value, ttl_ms, digest, expiry_ms],
        )

    after_commit(store_it)
    return seq, math.ceil(ttl)


def pending(limit: int = MAX_PENDING) -> list[Pending]:
    """The links not yet confirmed, cancelled or expired, newest first (at most `limit`).

    A link whose inviter may no longer grant roles is left out: it would be refused.
    """
    now = time.time()
    digests = [
        str(d)
        for d in _script("pending", PENDING_LUA)(
            keys=[_pending_key()], args=[int(now * 1000), limit]
        )
    ]
    if not digests:
        return []
    reply = _script("read", READ_LUA)(
        keys=[*(store.key(AREA, d) for d in digests), _pending_key()], args=digests
    )
    usable: dict[str, bool] = {}
    listed = []
    for digest, raw, left in zip(digests, reply[0::2], reply[1::2], strict=True):
        if not raw:
            continue
        data: dict[str, Any] = json.loads(raw)
        inviter = str(data["inviter"])
        if inviter not in usable:
            usable[inviter] = _may_invite(inviter)
        if not usable[inviter]:
            continue
        listed.append(
            Pending(
                digest=digest,
                role=str(data["role"]),
                inviter=inviter,
                created_at=datetime.fromtimestamp(int(data["at"]), UTC),
                expires_at=datetime.fromtimestamp(now + int(left) / 1000, UTC).replace(
                    microsecond=0
                ),
            )
        )
    return listed


def cancel(actor: str, digest: str, ip: str | None = None) -> Pending:
    """Withdraw a pending link by its digest, at once (later openings see 404). Audited.

    The store forgets the link before the caller commits: withdrawing access should not
    wait for, nor depend on, the audit row. A link already confirmed, cancelled or expired
    is a NotFound.
    """
    if not isinstance(digest, str) or not DIGEST.fullmatch(digest):
        raise NotFound("no such pending invitation")
    raw = _script("cancel", CANCEL_LUA)(
        keys=[store.key(AREA, digest), _pending_key()], args=[digest]
    )
    if not raw:
        raise NotFound("no such pending invitation; it was used, cancelled or has expired")
    data: dict[str, Any] = json.loads(raw)
    role = str(data["role"])
    audit.record(actor, audit.INVITE_CANCEL, audit_target(digest), role, ip)
    created = datetime.fromtimestamp(int(data["at"]), UTC)
    return Pending(digest, role, str(data["inviter"]), created, datetime.now(UTC))


def audit_target(digest: str) -> str:
    """The audit trail's name for the invitation of `digest` (a prefix: it grants nothing)."""
    return AUDIT_PREFIX + digest[:AUDIT_DIGEST]


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


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0, tzinfo=None).isoformat() + "Z"


def _script(name: str, source: str) -> Any:
    state = current_app.extensions.setdefault("berater.admin", {})
    if name not in state:
        state[name] = store.script(source)
    return state[name]


def _pending_key() -> str:
    return store.key(PENDING_AREA, PENDING_KEY)


def _consume(digest: str) -> tuple[int, str]:
    ttl_ms = int(float(current_app.config["INVITE_TTL"]) * 1000)
    mark = json.dumps({"used_at": int(time.time())})
    reply = _script("consume", CONSUME_LUA)(
        keys=[store.key(AREA, digest), store.key(USED_AREA, digest), _pending_key()],
        args=[mark, ttl_ms, digest],
    )
    return int(reply[0]), str(reply[1])


def _parse(raw: str, expires_in: float | None) -> Invitation:
    data: dict[str, Any] = json.loads(raw)
    return Invitation(str(data["role"]), str(data["inviter"]), int(expires_in or 0))


def _check_inviter(inviter: str) -> None:
    """A link dies with its inviter's admin role (or account): checked at preview and grant."""
    if not _may_invite(inviter):
        raise Forbidden("the administrator who made this link may no longer grant roles")


def _may_invite(inviter: str) -> bool:
    held, _ = subjects.roles_for(inviter)
    allowed = INVITER_ROLE in held
    if allowed and inviter.startswith(ACCOUNT_PREFIX):
        account = db.session.get(AuthUser, inviter.removeprefix(ACCOUNT_PREFIX))
        allowed = account is not None and not account.disabled
    return allowed
