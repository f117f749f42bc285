"""Where a sign-in may land, the state that ties the callback to the browser, and the landing
by type (`/?type=student|candidate&url=<target>`).

A landing by type is a sign-in that asks for a binding: after WeChat, a person who lacks the
binding `type` names goes to its registration page first, then on to the target. Its
callback may restart once: a refreshed callback (its state already used) or a code WeChat
refuses (used twice) sends the browser through WeChat again with a fresh state, instead of
an error page. The restart is allowed by an entry in the session that the landing and each
successful callback write, and that a restart uses up, so a browser that keeps failing gets
the error page after one restart, never a loop.
"""

from __future__ import annotations

import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from flask import current_app, session, url_for

from berater.db import transaction
from berater.errors import BadRequest
from berater.extensions import store
from berater.identity import services as tokens

STATE_KEY = "signin_state"
AGAIN_KEY = "signin_again"  # the landing by type a stale callback may restart, once
STATE_AREA = "signin-state"
STATE_TTL = 10 * 60  # time for a person on WeChat's page
MAX_NEXT = 1024
MAX_CODE = 128  # longer than any OAuth code WeChat sends
KINDS = ("student", "candidate")  # the bindings a landing by type may ask for


class TargetNotAllowed(BadRequest):
    """The landing target is neither a path here nor an URL on SIGNIN_REDIRECT_HOSTS."""

    message = "that sign-in target is not allowed"
    hint = "这个链接要打开的地址不在允许的范围内，无法继续。请从公众号菜单重新进入。"


class UnknownKind(BadRequest):
    message = "type must be student or candidate"
    hint = "链接中的身份类型不正确（只能是学生或考生）。请从公众号菜单重新进入。"


class StaleSignIn(BadRequest):
    """The callback's state is unknown to this browser, or already used."""

    hint = "登录链接已失效或已经用过。请从公众号菜单重新进入。"


@dataclass(frozen=True)
class Landing:
    """Where a sign-in goes: `target` (may be empty) and, for a landing by type, `kind`."""

    target: str
    kind: str | None = None


def check_next(target: str) -> str:
    """`target` when it is a path here or an URL on an allowlisted host; BadRequest otherwise."""
    if not target:
        return ""
    if len(target) > MAX_NEXT or any(ch in target for ch in "\r\n\t\\"):
        raise TargetNotAllowed()
    parts = urlsplit(target)
    local = not parts.scheme and not parts.netloc
    if local and target.startswith("/") and not target.startswith("//"):
        return target
    hosts = current_app.config["SIGNIN_REDIRECT_HOSTS"]
    if parts.scheme in {"http", "https"} and parts.hostname and parts.hostname in hosts:
        return target
    raise TargetNotAllowed()


def check_kind(kind: str) -> str:
    """`kind` when a landing by type may ask for it; BadRequest otherwise."""
    if kind not in KINDS:
        raise UnknownKind()
    return kind


def begin(target: str, kind: str | None = None) -> str:
    """A fresh state, bound to this browser (its session) and kept once on the server."""
    landing = Landing(check_next(target), check_kind(kind) if kind is not None else None)
    state = secrets.token_urlsafe(24)
    # A plain sign-in keeps its target as it is; a landing by type adds its kind.
    value = landing.target if landing.kind is None else json.dumps(landing.__dict__)
    store.set(STATE_AREA, state, value, ttl=STATE_TTL)
    session[STATE_KEY] = state
    return state


def begin_landing(target: str, kind: str) -> str:
    """`begin` for a landing by type, which a stale callback may then restart once."""
    state = begin(target, kind)
    remember(Landing(target, kind))
    return state


def remember(landing: Landing) -> None:
    """Let a stale or refused callback of this browser restart `landing` (once)."""
    session[AGAIN_KEY] = {"target": landing.target, "kind": landing.kind}


def forget() -> None:
    """A plain sign-in started: a stale callback must not restart an older landing."""
    session.pop(AGAIN_KEY, None)


def restart() -> str | None:
    """A fresh state for the remembered landing (a landing by type, or any sign-in refused
    for a failure of ours or WeChat's), using up the permission; None when there is none
    (a plain sign-in, or a restart already tried)."""
    again: Any = session.pop(AGAIN_KEY, None)
    if not isinstance(again, dict):
        return None
    kind = again.get("kind")
    try:
        return begin(str(again.get("target") or ""), None if kind is None else str(kind))
    except BadRequest:  # the settings changed since: no longer a landing we may go to
        return None


def finish_landing(state: str) -> Landing:
    """Check the state WeChat sent back and return the remembered landing; works once."""
    expected = session.get(STATE_KEY)
    if not expected or not state or not hmac.compare_digest(expected, state):
        raise StaleSignIn("this sign-in link is stale or was not started in this browser")
    session.pop(STATE_KEY, None)
    # Server-side and single use: a copied session cookie cannot replay the callback.
    value = store.get_and_delete(STATE_AREA, state)
    if value is None:
        raise StaleSignIn("this sign-in link is stale or was already used")
    if value.startswith("{"):  # a path starts with "/", an URL with its scheme
        stored = json.loads(value)
        return Landing(str(stored["target"]), str(stored["kind"]))
    return Landing(value)


def finish(state: str) -> str:
    """Check the state WeChat sent back and return the remembered target; works once."""
    return finish_landing(state).target


def check_code(code: str) -> str:
    """The OAuth code WeChat sent back to a callback, when it has a code's shape."""
    if not code or len(code) > MAX_CODE:
        raise BadRequest("WeChat did not send a sign-in code")
    return code


def finish_pages(state: str, code: str, prefix: str, pages: str) -> tuple[str, dict[str, Any]]:
    """A sign-in for a set of staff pages under `prefix` came back from WeChat: the page to
    return to and the token minted for the code (in its own transaction)."""
    target = finish(state)
    if not target.startswith(f"{prefix}/"):
        raise BadRequest(f"this sign-in was not started from {pages}")
    check_code(code)
    with transaction():
        minted = tokens.sign_in(code, None, None)
    return target, minted


def landing_url(target: str, token: str) -> str:
    """The partner app's URL with the token in the fragment (never sent to any server log)."""
    base = target.split("#", 1)[0]
    return f"{base}#token={token}"


def after_sign_in(landing: Landing, signed_in: dict[str, Any]) -> str:
    """Where a landing by type goes with a fresh token: on to its target (the binding page
    when it has none) when the person holds the binding it asks for, else to the matching
    registration page, which goes on to the target once the binding is made."""
    kind = landing.kind
    if kind is None:
        raise ValueError("a plain sign-in has no landing by type")
    if signed_in[kind]:
        return landing_url(landing.target or url_for("pages.binding"), signed_in["token"])
    query = f"?{urlencode({'next': landing.target})}" if landing.target else ""
    page = url_for("pages.register_student" if kind == "student" else "pages.register_candidate")
    return landing_url(page + query, signed_in["token"])


def landing_link(kind: str, target: str = "") -> str:
    """The path of the landing by type for `kind`, going on to `target`."""
    values = {"type": kind, **({"url": target} if target else {})}
    return f"{url_for('signin.index')}?{urlencode(values)}"
