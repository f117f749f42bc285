"""The invitation pages a person opens in WeChat's browser.

Who is looking is known from a WeChat OAuth sign-in made for these pages: its own callback
(`/api/admin/callback`, reusing the sign-in state of berater/signin) keeps the minted token
in the Flask session, a signed HttpOnly SameSite=Lax cookie. The token is encrypted, so the
cookie does not show the openid, and it expires, is signed out and loses roles like any
other token. Only these pages read it; the JSON API takes Bearer tokens only.

The preview (GET) grants nothing. The Confirm button posts an empty body to
`/api/admin/auth?seq=...&csrf=...`: the CSRF token is bound to the session. (The app refuses
non-JSON request bodies, see berater/http.py, so the form carries no fields.)
"""

from __future__ import annotations

import functools
import hmac
import secrets
from collections.abc import Callable
from typing import ParamSpec

from flask import Response, redirect, render_template, request, session, url_for

from berater.admin import bp, invites
from berater.db import transaction
from berater.errors import ApiError, BadRequest, Forbidden, Unauthorized
from berater.extensions import wechat
from berater.http import no_store
from berater.identity import roles
from berater.identity.auth import Identity, identity_from_token
from berater.signin import services as signin
from berater.urls import external_url

P = ParamSpec("P")
SESSION_TOKEN = "admin_token"  # noqa: S105 - the session key, not a secret
SESSION_CSRF = "admin_csrf"


def page(view: Callable[P, Response | str]) -> Callable[P, Response | str]:
    """Render an ApiError as a page with its status: a person is looking, not a client.
    Links, CSRF tokens and holders are never stored by a cache (`no_store`)."""

    @functools.wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> Response | str:
        try:
            return view(*args, **kwargs)
        except ApiError as exc:
            switch_url = None
            if exc.status == 403 and request.endpoint == "admin.go_link":
                # Signed in as somebody who is not an admin: offer to sign in as another.
                switch_url = url_for("admin.switch", next=request.path)
            html = render_template(
                "admin/error.html", message=exc.message, status=exc.status, switch_url=switch_url
            )
            response = Response(html, exc.status, mimetype="text/html")
            if "Retry-After" in exc.headers:
                response.headers["Retry-After"] = exc.headers["Retry-After"]
            return response

    return no_store(wrapper)


@bp.after_request
def private(response: Response) -> Response:
    """An invitation's sequence is in the page's URL: never sent on as a Referer, not even
    within the service (stricter than the pages' default; the app's hook adds the rest)."""
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def signed_in() -> Identity | None:
    """The WeChat user of this browser's admin-page sign-in, if it is still valid."""
    token = session.get(SESSION_TOKEN)
    if not isinstance(token, str) or not token:
        return None
    try:
        who = identity_from_token(token)
    except Unauthorized:  # expired or signed out: sign in again
        session.pop(SESSION_TOKEN, None)
        return None
    return who if who.kind == "wechat" else None


def sign_in_first(target: str) -> Response:
    """Send the browser through WeChat OAuth, to come back to `target` (a page here)."""
    state = signin.begin(target)
    return redirect(wechat.authorize_url(external_url("admin.callback"), state))


@bp.get("/callback")
@page
def callback() -> Response:
    """WeChat came back: remember who this browser is, for the admin pages only."""
    target, minted = signin.finish_pages(
        request.args.get("state", ""), request.args.get("code", ""), bp.url_prefix, "an admin page"
    )
    session[SESSION_TOKEN] = minted["token"]
    session[SESSION_CSRF] = secrets.token_urlsafe(32)  # a new sign-in, a new CSRF token
    return redirect(target)


@bp.get("/switch")
@page
def switch() -> Response:
    """Forget who this browser is and sign in again (a shared phone, a second test user)."""
    target = signin.check_next(request.args.get("next", ""))
    if not target.startswith(f"{bp.url_prefix}/"):
        raise BadRequest("only an admin page can be opened after signing in again")
    session.pop(SESSION_TOKEN, None)
    return sign_in_first(target)


@bp.get("/go/link/<role>")
@page
def go_link(role: str) -> Response | str:
    """An admin in WeChat: sign in, then show a new invitation link for `role`."""
    who = signed_in()
    if who is None:
        return sign_in_first(url_for("admin.go_link", role=role))
    if invites.INVITER_ROLE not in who.roles:
        raise Forbidden("only an administrator may create invitation links")
    with transaction():
        seq, ttl = invites.create(who.subject, role, request.remote_addr)
    link = external_url("admin.preview", seq=seq)
    return render_template(
        "admin/link.html", link=link, role=role, role_name=roles.display_name(role), ttl=ttl
    )


@bp.get("/auth")
@page
def preview() -> Response | str:
    """What the link offers, with a Confirm button. Grants nothing."""
    seq = request.args.get("seq", "")
    invitation = invites.peek(seq)
    who = signed_in()
    if who is None:
        return sign_in_first(url_for("admin.preview", seq=seq))
    csrf = session.get(SESSION_CSRF) or secrets.token_urlsafe(32)
    session[SESSION_CSRF] = csrf
    return render_template(
        "admin/preview.html",
        invitation=invitation,
        role_name=roles.display_name(invitation.role),
        held=invitation.role in who.roles,
        confirm_url=url_for("admin.confirm", seq=seq, csrf=csrf),
        switch_url=url_for("admin.switch", next=url_for("admin.preview", seq=seq)),
    )


@bp.post("/auth")
@page
def confirm() -> Response | str:
    """The explicit confirmation: take the invitation once and grant its role."""
    expected, given = session.get(SESSION_CSRF), request.args.get("csrf", "")
    if not (
        isinstance(expected, str)
        and expected
        and given
        and hmac.compare_digest(expected.encode(), given.encode())
    ):
        raise Forbidden("this confirmation did not come from the invitation page; open the link")
    who = signed_in()
    if who is None:
        raise Unauthorized("your sign-in has expired; open the invitation link again")
    with transaction():
        accepted = invites.accept(request.args.get("seq", ""), who.subject, request.remote_addr)
    return render_template(
        "admin/done.html",
        accepted=accepted,
        role_name=roles.display_name(accepted.role),
    )
