"""Where a sign-in may land, and the state that ties the callback to the browser."""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlsplit

from flask import current_app, session

from berater.errors import BadRequest
from berater.extensions import store

STATE_KEY = "signin_state"
STATE_AREA = "signin-state"
STATE_TTL = 10 * 60  # time for a person on WeChat's page
MAX_NEXT = 1024


def check_next(target: str) -> str:
    """`target` when it is a path here or an URL on an allowlisted host; BadRequest otherwise."""
    if not target:
        return ""
    if len(target) > MAX_NEXT or any(ch in target for ch in "\r\n\t\\"):
        raise BadRequest("that sign-in target is not allowed")
    parts = urlsplit(target)
    local = not parts.scheme and not parts.netloc
    if local and target.startswith("/") and not target.startswith("//"):
        return target
    hosts = current_app.config["SIGNIN_REDIRECT_HOSTS"]
    if parts.scheme in {"http", "https"} and parts.hostname and parts.hostname in hosts:
        return target
    raise BadRequest("that sign-in target is not allowed")


def begin(target: str) -> str:
    """A fresh state, bound to this browser (its session) and kept once on the server."""
    state = secrets.token_urlsafe(24)
    store.set(STATE_AREA, state, check_next(target), ttl=STATE_TTL)
    session[STATE_KEY] = state
    return state


def finish(state: str) -> str:
    """Check the state WeChat sent back and return the remembered target; works once."""
    expected = session.get(STATE_KEY)
    if not expected or not state or not hmac.compare_digest(expected, state):
        raise BadRequest("this sign-in link is stale or was not started in this browser")
    session.pop(STATE_KEY, None)
    # Server-side and single use: a copied session cookie cannot replay the callback.
    target = store.get_and_delete(STATE_AREA, state)
    if target is None:
        raise BadRequest("this sign-in link is stale or was already used")
    return target


def landing_url(target: str, token: str) -> str:
    """The partner app's URL with the token in the fragment (never sent to any server log)."""
    base = target.split("#", 1)[0]
    return f"{base}#token={token}"
