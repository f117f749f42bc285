"""Who is looking at the console: the session, its idle timeout, CSRF and the role check.

The session is Flask's signed cookie (HttpOnly, SameSite=Lax, Secure in production). It keeps
the token minted at sign-in, never a password or an openid in clear: the token is encrypted,
and every request reads it as the API reads a Bearer token, so an expired, signed-out or
revoked token, or a role taken away, counts at once. While the person is active the token is
refreshed before it expires (up to TOKEN_MAX_AGE after the sign-in).

Each session also has a record in the store, kept for CONSOLE_IDLE_SECONDS after the last
request: an idle session ends when it runs out, and signing out deletes it, so a copy of the
cookie taken before is worth nothing afterwards.
"""

from __future__ import annotations

import functools
import hmac
import secrets
import time
from collections.abc import Callable
from typing import Any, ParamSpec

from flask import current_app, g, redirect, render_template, request, session, url_for
from markupsafe import Markup
from werkzeug.wrappers import Response

from berater.console import SECTIONS, STAFF, bp
from berater.errors import ApiError, Forbidden, Unauthorized
from berater.extensions import store
from berater.http import checks_body_after_auth, no_store, page_policy
from berater.identity import roles
from berater.identity import services as tokens
from berater.identity.auth import Identity, identity_from_token
from berater.identity.subjects import ACCOUNT_PREFIX

P = ParamSpec("P")
SESSION_KEY = "console"
LOGIN_CSRF = "console_login_csrf"  # the sign-in form's token, before anyone is signed in
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SEEN_EVERY = 15  # seconds: how often the last-seen time is written back (cookie and store)
SESSION_AREA = "console-session"
# Strict: scripts, styles, images and fetches from this origin only, forms post here only,
# no plugins, no <base>, never framed.
CONSOLE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


class SignedOut(Unauthorized):
    """No console session, or one that ended: the person signs in again."""


def staff() -> Identity:
    """The person signed in to this request's console view."""
    who: Identity | None = g.get("console_staff")
    if who is None:
        raise RuntimeError("staff() is only set inside a console_view")
    return who


def staff_name(who: Identity) -> str:
    """How the console names a person: the account's username, or a WeChat user by the
    start and end of the openid (enough to tell people apart, not to copy)."""
    if who.subject.startswith(ACCOUNT_PREFIX):
        return who.subject.removeprefix(ACCOUNT_PREFIX)
    openid = who.subject
    shown = f"{openid[:4]}…{openid[-4:]}" if len(openid) > 10 else openid
    return f"微信用户 · WeChat {shown}"


def begin(token: str) -> None:
    """A fresh console session for `token` (a new cookie content: nothing carries over)."""
    session.clear()
    sid = secrets.token_urlsafe(24)
    store.set(SESSION_AREA, sid, 1, ttl=current_app.config["CONSOLE_IDLE_SECONDS"])
    session[SESSION_KEY] = {
        "token": token,
        "sid": sid,
        "csrf": secrets.token_urlsafe(32),
        "seen": round(time.time(), 1),
    }


def end() -> None:
    """End this browser's console session, here and in the store."""
    kept = session.pop(SESSION_KEY, None)
    if isinstance(kept, dict) and isinstance(kept.get("sid"), str):
        store.delete(SESSION_AREA, kept["sid"])


def signed_in(keep_alive: bool = True) -> Identity | None:
    """The person of this browser's console session; None without one. Raises SignedOut when
    the session ended (idle, expired, signed out elsewhere) so the page can say why."""
    kept = session.get(SESSION_KEY)
    if not isinstance(kept, dict) or not all(
        isinstance(kept.get(name), str) for name in ("token", "sid", "csrf")
    ):
        return None
    now = time.time()
    idle = current_app.config["CONSOLE_IDLE_SECONDS"]
    if now - float(kept.get("seen") or 0) > idle:
        end()
        raise SignedOut(f"signed out after {_minutes(idle)} without activity; sign in again")
    if store.get(SESSION_AREA, kept["sid"]) is None:
        session.pop(SESSION_KEY, None)
        raise SignedOut("this console session has ended; sign in again")
    try:
        who = identity_from_token(kept["token"])
    except Unauthorized as exc:
        end()
        raise SignedOut(exc.message) from None
    if keep_alive:
        _keep_alive(kept, who, now)
    return who


def _keep_alive(kept: dict[str, Any], who: Identity, now: float) -> None:
    idle = current_app.config["CONSOLE_IDLE_SECONDS"]
    changed = now - float(kept["seen"]) >= min(SEEN_EVERY, idle / 3)
    claims = who.claims
    if claims is not None and claims.expires_at - now < current_app.config["TOKEN_TTL"] / 2:
        try:
            kept["token"] = tokens.refresh(who)["token"]
            changed = True
        except ApiError:
            pass  # past TOKEN_MAX_AGE: the token runs out and the person signs in again
    if changed:
        kept["seen"] = round(now, 1)
        session[SESSION_KEY] = kept
        store.set(SESSION_AREA, kept["sid"], 1, ttl=idle)


def _minutes(seconds: int) -> str:
    return f"{seconds // 60} min" if seconds >= 60 else f"{seconds} s"


def csrf_token() -> str:
    """The CSRF token of this session (of the sign-in form before anyone is signed in)."""
    kept = session.get(SESSION_KEY)
    if isinstance(kept, dict) and isinstance(kept.get("csrf"), str):
        return str(kept["csrf"])
    token = session.get(LOGIN_CSRF)
    if not isinstance(token, str):
        token = session[LOGIN_CSRF] = secrets.token_urlsafe(32)
    return token


def check_csrf() -> None:
    """Refuse a change whose form (or script) did not carry this session's CSRF token."""
    given = request.headers.get(CSRF_HEADER) or request.form.get(CSRF_FIELD, "")
    expected = csrf_token()
    if not given or not hmac.compare_digest(expected.encode(), given.encode()):
        raise Forbidden(
            "this form did not come from the console or has expired; reload the page and try again"
        )


@bp.context_processor
def template_values() -> dict[str, Any]:
    """What every console template reads: who is signed in, the navigation, the CSRF field."""
    who: Identity | None = g.get("console_staff")
    views = current_app.view_functions
    sections = [
        section
        for section in SECTIONS
        if who is not None and section.endpoint in views and who.has_any(section.roles)
    ]
    return {
        "staff": who,
        "staff_name": staff_name(who) if who is not None else None,
        "staff_roles": sorted(roles.display_name(r) for r in who.roles & set(STAFF)) if who else [],
        "sections": sections,
        "csrf_field": csrf_field,
        "csrf_token": csrf_token,
    }


def csrf_field() -> Markup:
    """The hidden field every console form carries (Markup.format escapes the values)."""
    return Markup('<input type="hidden" name="{}" value="{}">').format(CSRF_FIELD, csrf_token())


def error_page(exc: ApiError) -> Response:
    html = render_template("console/error.html", message=exc.message, status=exc.status)
    response = Response(html, exc.status, mimetype="text/html")
    for name, value in exc.headers.items():
        response.headers[name] = value
    return response


def console_view(
    *allowed: str, json: bool = False, keep_alive: bool = True
) -> Callable[[Callable[P, Any]], Callable[P, Any]]:
    """Wrap a console view: signed in, holding one of `allowed` (default: `admin`), a CSRF
    token on every POST, no-store, the console's policy. `json=True` for the small JSON
    answers scripts poll: errors are envelopes, and `keep_alive=False` keeps polling from
    holding an idle session open."""
    needed = allowed or (roles.ADMIN,)

    def decorate(view: Callable[P, Any]) -> Callable[P, Any]:
        @functools.wraps(view)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            try:
                try:
                    who = signed_in(keep_alive)
                except SignedOut as exc:
                    if json:
                        raise
                    return _to_sign_in(exc.message)
                if who is None:
                    if json:
                        raise Unauthorized("sign in to the console first")
                    return _to_sign_in("")
                g.console_staff = who
                if not who.has_any(needed):
                    raise Forbidden("you do not hold a role that may open this page")
                if request.method == "POST":
                    check_csrf()
                return view(*args, **kwargs)
            except ApiError as exc:
                if json:
                    raise
                return error_page(exc)

        return page_policy(CONSOLE_CSP)(no_store(checks_body_after_auth(wrapper)))

    return decorate


def _to_sign_in(reason: str) -> Response:
    """Send the browser to the sign-in page, to come back here (to the page a form was on)."""
    target = request.full_path.rstrip("?") if request.method == "GET" else url_for("console.home")
    values = {"next": target, **({"reason": reason} if reason else {})}
    return redirect(url_for("console.signin_page", **values), 303)


def public_view(view: Callable[P, Any]) -> Callable[P, Any]:
    """The sign-in pages: no session needed, the same headers, errors as console pages."""

    @functools.wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
        try:
            if request.method == "POST":
                check_csrf()
            return view(*args, **kwargs)
        except ApiError as exc:
            return error_page(exc)

    return page_policy(CONSOLE_CSP)(no_store(checks_body_after_auth(wrapper)))
