"""Revocation of tokens, effective everywhere within REVOCATION_SYNC seconds.

Two marks per subject live in the store: `nbf` (sign-out: tokens issued before it are
refused) and `rat` (roles changed: tokens issued before it have their roles read again).
Every change also bumps a sequence number, so each worker keeps a copy of all recent marks
and fetches only what changed since its last look, at most once per REVOCATION_SYNC
seconds. A token check therefore costs no store round trip in the common case, yet a
sign-out in one worker is seen by all others within a second. Marks are kept for
TOKEN_TTL (plus a minute): by then every token issued before them has expired.

A mark that follows a database change (a role granted or revoked, a binding, an account
disabled or given a new password) is written only after that change commits, through
`berater.db.after_commit`: a change that rolls back leaves no mark, and no token can keep
what the change took away. Why that order is safe, for a role taken away at commit time C
with its mark written at time M (C < M, the mark's time read after the commit):

- A token check that finds the mark (issued_at <= M) reads the roles from the database.
  It read the mark first, after M, so after C, and `token_required` checks before the view
  reads anything: the request's transaction starts with that roles read, which therefore
  sees the change.
- Every token is issued_at the start of the transaction that read its roles
  (`berater.db.began_at`), or earlier. A token whose roles were read without the change
  comes from a transaction that began before C, so issued_at < C < M: its next check
  finds the mark and reads the roles again. That covers a token refreshed between the
  change and its commit, and one read from an older snapshot on MariaDB (REPEATABLE READ)
  and minted after the mark.
- Times are kept to the millisecond, so a token and a mark can carry the same value; a
  token issued_at a mark's value counts as issued before it.

Had the mark come first, a token refreshed between the mark and the commit would read the
old roles, carry them with issued_at > M, and keep them until it expires. Other workers see
a mark within REVOCATION_SYNC, as before; a mark that fails to be written after the commit
makes the request fail (see `after_commit`) while the change stays committed.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, current_app

from berater.db import after_commit
from berater.extensions import store

AREA = "revoke"

REVOKE_LUA = """
local cur = redis.call('HGET', KEYS[3], ARGV[1])
local nbf, rat = 0, 0
if cur then
  local sep = string.find(cur, ',')
  nbf = tonumber(string.sub(cur, 1, sep - 1))
  rat = tonumber(string.sub(cur, sep + 1))
end
local now = tonumber(ARGV[3])
if ARGV[2] == 'nbf' then nbf = now end
rat = now
redis.call('HSET', KEYS[3], ARGV[1], string.format('%.3f,%.3f', nbf, rat))
local seq = redis.call('INCR', KEYS[1])
redis.call('ZADD', KEYS[2], seq, ARGV[1])
local keep = tonumber(ARGV[4])
for _, s in ipairs(redis.call('ZRANGE', KEYS[2], 0, 99)) do
  local m = redis.call('HGET', KEYS[3], s)
  local newest = 0
  if m then newest = tonumber(string.sub(m, string.find(m, ',') + 1)) end
  if newest >= now - keep then break end
  redis.call('ZREM', KEYS[2], s)
  redis.call('HDEL', KEYS[3], s)
end
return seq
"""

SYNC_LUA = """
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local last = tonumber(ARGV[1])
local full = 0
if cur < last then
  last = -1
  full = 1
end
local out = {cur, full}
for _, s in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. last, '+inf')) do
  out[#out + 1] = s
  out[#out + 1] = redis.call('HGET', KEYS[3], s) or '0,0'
end
return out
"""


@dataclass
class _Copy:
    """One worker's copy of the marks, per app."""

    interval: float  # REVOCATION_SYNC
    lock: threading.Lock = field(default_factory=threading.Lock)
    seq: int = -1
    synced_at: float = float("-inf")
    marks: dict[str, tuple[float, float]] = field(default_factory=dict)
    scripts: dict[str, Callable[..., Any]] = field(default_factory=dict)


def init_app(app: Flask) -> None:
    app.extensions["berater.identity.revocation"] = _Copy(float(app.config["REVOCATION_SYNC"]))


def _copy() -> _Copy:
    return current_app.extensions["berater.identity.revocation"]


def _script(name: str, source: str) -> Callable[..., Any]:
    copy = _copy()
    if name not in copy.scripts:
        copy.scripts[name] = store.script(source)
    return copy.scripts[name]


def _keys() -> list[str]:
    return [store.key(AREA, "seq"), store.key(AREA, "log"), store.key(AREA, "marks")]


def _keep() -> int:
    return int(current_app.config["TOKEN_TTL"]) + 60


def _record(subject: str, kind: str) -> None:
    now = round(time.time(), 3)
    _script("revoke", REVOKE_LUA)(keys=_keys(), args=[subject, kind, f"{now:.3f}", _keep()])
    copy = _copy()
    with copy.lock:
        nbf, _ = copy.marks.get(subject, (0.0, 0.0))
        copy.marks[subject] = (now if kind == "nbf" else nbf, now)


def sign_out(subject: str) -> None:
    """Refuse every token of `subject` issued until now."""
    _record(subject, "nbf")


def roles_changed(subject: str) -> None:
    """Make every token of `subject` issued until now read its roles again."""
    _record(subject, "rat")


def sign_out_after_commit(subject: str) -> None:
    """`sign_out(subject)` once the current transaction commits; nothing if it rolls back."""
    after_commit(functools.partial(sign_out, subject))


def roles_changed_after_commit(subject: str) -> None:
    """`roles_changed(subject)` once the current transaction commits; nothing if it rolls back."""
    after_commit(functools.partial(roles_changed, subject))


def marks_for(subject: str, app: Flask | None = None) -> tuple[float, float]:
    """(not-before, roles-changed-at) for `subject`, from a copy at most REVOCATION_SYNC old
    (`app`: the current one, when the caller holds it already)."""
    copy = _copy() if app is None else app.extensions["berater.identity.revocation"]
    now = time.monotonic()
    if now - copy.synced_at > copy.interval:
        _sync(copy, now)
    return copy.marks.get(subject, (0.0, 0.0))


def _sync(copy: _Copy, now: float) -> None:
    with copy.lock:
        if now - copy.synced_at <= copy.interval:
            return  # another thread synced while this one waited
        reply = _script("sync", SYNC_LUA)(keys=_keys(), args=[copy.seq])
        seq, full, pairs = int(reply[0]), int(reply[1]), reply[2:]
        if full:
            copy.marks.clear()
        for subject, mark in zip(pairs[0::2], pairs[1::2], strict=True):
            nbf, rat = (float(x) for x in mark.split(","))
            copy.marks[subject] = (nbf, rat)
        horizon = time.time() - _keep()
        if len(copy.marks) > 1024:
            copy.marks = {s: m for s, m in copy.marks.items() if m[1] >= horizon}
        copy.seq = seq
        copy.synced_at = now
