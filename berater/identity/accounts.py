"""Username and password accounts: argon2id hashes, password rules, failed-login limits."""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app

from berater import PROJECT_ROOT
from berater.db import db
from berater.errors import BadRequest, Conflict, NotFound, TooManyRequests, Unauthorized
from berater.extensions import store
from berater.identity import revocation
from berater.identity.subjects import account_subject
from berater.models import AuthUser

USERNAME_MIN, USERNAME_MAX = 3, 64
USERNAME = re.compile(rf"^[a-z0-9][a-z0-9_.-]{{{USERNAME_MIN - 1},{USERNAME_MAX - 1}}}$")
MIN_PASSWORD, MAX_PASSWORD = 8, 128
COMMON_PASSWORDS = PROJECT_ROOT / "data" / "common-passwords.txt"
FAILED = "login-failed"
LOCKED = "login-locked"
FIRST_WAIT = 1  # seconds locked at LOGIN_MAX_FAILURES; each further failure doubles it
MAX_WAIT = 15 * 60
BAD_LOGIN = "wrong username or password"

# KEYS: the account's attempt count, its lock; ARGV: LOGIN_MAX_FAILURES, the window, the first
# and the longest wait (ms). One step: while locked, the milliseconds left; else the attempt
# is counted (the window starts with the first) and 0 returned, locking the account first
# when this is its LOGIN_MAX_FAILURES-th attempt or later, so that of parallel attempts only
# those counted before the lock have their password checked.
_TAKE_ATTEMPT = """
local left = redis.call('PTTL', KEYS[2])
if left > 0 then return left end
redis.call('SET', KEYS[1], 0, 'PX', ARGV[2], 'NX')
local over = redis.call('INCR', KEYS[1]) - tonumber(ARGV[1])
if over >= 0 then
  local wait = math.min(tonumber(ARGV[4]), tonumber(ARGV[3]) * 2 ^ over)
  redis.call('SET', KEYS[2], 1, 'PX', string.format('%d', wait))
end
return 0
"""


@functools.cache
def _common_passwords() -> frozenset[str]:
    lines = COMMON_PASSWORDS.read_text(encoding="utf-8").splitlines()
    return frozenset(
        line.strip().lower() for line in lines if line.strip() and not line.startswith("#")
    )


def _hasher() -> PasswordHasher:
    state = current_app.extensions.setdefault("berater.identity.accounts", {})
    if "hasher" not in state:
        cfg = current_app.config
        state["hasher"] = PasswordHasher(
            time_cost=cfg["ARGON2_TIME_COST"],
            memory_cost=cfg["ARGON2_MEMORY_KIB"],
            parallelism=cfg["ARGON2_PARALLELISM"],
        )
        # Verified against when the user is unknown, so both failures take the same time.
        state["dummy"] = state["hasher"].hash("not a password of anybody")
    return state["hasher"]


def normalise_username(username: str) -> str:
    """Lower-case and check a username; BadRequest when it cannot be one."""
    name = username.strip().lower()
    if not USERNAME.match(name):
        raise BadRequest(
            f"a username is {USERNAME_MIN}-{USERNAME_MAX} characters: letters, digits, '_', '.', "
            "'-', starting with a letter or digit"
        )
    return name


@dataclass(frozen=True)
class PasswordRules:
    """The rules `check_password_rules` and `normalise_username` apply, for a page to show
    before the first try."""

    min_length: int = MIN_PASSWORD
    max_length: int = MAX_PASSWORD
    not_common: bool = True  # not in data/common-passwords.txt (case ignored)
    not_username: bool = True  # does not contain the username (case ignored)
    username_min: int = USERNAME_MIN
    username_max: int = USERNAME_MAX
    username_pattern: str = USERNAME.pattern  # lower-cased first; a letter or digit first


PASSWORD_RULES = PasswordRules()


def check_password_rules(password: str, username: str = "") -> None:
    """Length 8-128, not a common password, not the username (PASSWORD_RULES)."""
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise BadRequest(f"a password is {MIN_PASSWORD} to {MAX_PASSWORD} characters long")
    lowered = password.lower()
    if lowered in _common_passwords() or (username and username.lower() in lowered):
        raise BadRequest("that password is too easy to guess; choose another")


def create_user(username: str, password: str) -> AuthUser:
    """A new account. The caller owns the transaction."""
    name = normalise_username(username)
    check_password_rules(password, name)
    if db.session.get(AuthUser, name) is not None:
        raise Conflict(f"the username {name!r} is taken")
    user = AuthUser(username=name, password_hash=_hasher().hash(password))
    db.session.add(user)
    db.session.flush()
    return user


def reset_password(username: str, password: str) -> None:
    """Set a new password and sign the account out everywhere once the caller commits."""
    user = _get(username)
    check_password_rules(password, user.username)
    user.password_hash = _hasher().hash(password)
    db.session.flush()
    revocation.sign_out_after_commit(account_subject(user.username))


def set_disabled(username: str, disabled: bool = True) -> None:
    """Disable (or enable) an account; disabling signs it out everywhere once the caller
    commits."""
    user = _get(username)
    user.disabled = disabled
    db.session.flush()
    if disabled:
        revocation.sign_out_after_commit(account_subject(user.username))


def is_active(username: str) -> bool:
    """True when the account `username` (exactly, as stored) exists and is not disabled."""
    user = db.session.get(AuthUser, username)
    return user is not None and user.username == username and not user.disabled


def list_users() -> list[AuthUser]:
    return list(db.session.scalars(db.select(AuthUser).order_by(AuthUser.username)))


def _get(username: str) -> AuthUser:
    user = db.session.get(AuthUser, normalise_username(username))
    if user is None:
        raise NotFound("no such account")
    return user


def authenticate(username: str, password: str) -> str:
    """The token subject for good credentials; one error and similar time for every failure.

    Attempts are counted per account, not per address, so a campus NAT is not locked out.
    Each attempt is counted before its password is checked, in one step with the lock
    check, so parallel guesses cannot get past the limit: the LOGIN_MAX_FAILURES-th attempt
    in LOGIN_FAILURE_WINDOW locks the account for FIRST_WAIT, and each one after a lock
    doubles the wait. A good password clears the count and the lock.
    """
    name = username.strip().lower()
    _take_attempt(name)
    hasher = _hasher()
    user = db.session.get(AuthUser, name) if USERNAME.match(name) else None
    try:
        hasher.verify(user.password_hash if user else _dummy_hash(), password)
        good = user is not None and not user.disabled
    except (VerificationError, InvalidHashError):
        good = False
    if not good or user is None:
        raise Unauthorized(BAD_LOGIN)  # the attempt stays counted
    store.delete(FAILED, name)
    store.delete(LOCKED, name)
    if hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hasher.hash(password)
    return account_subject(user.username)


def _dummy_hash() -> str:
    return current_app.extensions["berater.identity.accounts"]["dummy"]


def _take_attempt(name: str) -> None:
    """Count a sign-in attempt of `name`; TooManyRequests while the account is locked."""
    cfg = current_app.config
    left = store.script(_TAKE_ATTEMPT)(
        keys=[store.key(FAILED, name), store.key(LOCKED, name)],
        args=[
            int(cfg["LOGIN_MAX_FAILURES"]),
            int(cfg["LOGIN_FAILURE_WINDOW"] * 1000),
            int(FIRST_WAIT * 1000),
            MAX_WAIT * 1000,
        ],
    )
    if left:
        raise TooManyRequests(
            "too many failed sign-ins; wait before trying again", math.ceil(int(left) / 1000)
        )
