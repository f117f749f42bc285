"""Signing in to the console with WeChat or a password account, and signing out."""

from __future__ import annotations

from flask import redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from berater.console import STAFF, access, bp
from berater.db import transaction
from berater.errors import ApiError, BadRequest, Forbidden
from berater.extensions import wechat
from berater.identity import services as tokens
from berater.identity.auth import identity_from_token
from berater.signin import services as signin
from berater.urls import external_url

MAX_FIELD = 128  # longest username or password the form passes on (the rules allow 128)


def _target(value: str) -> str:
    """Where to go after signing in: a console page, else the console's start page."""
    try:
        target = signin.check_next(value)
    except BadRequest:
        target = ""
    return target if target.startswith(f"{bp.url_prefix}/") else url_for("console.home")


def _staff_token(minted: dict[str, object]) -> str:
    """The minted token, when its holder may use the console; Forbidden otherwise."""
    token = str(minted["token"])
    if not identity_from_token(token).has_any(STAFF):
        raise Forbidden("this sign-in does not hold the admin or nova_admin role")
    return token


@bp.route("/signin", methods=["GET", "POST"])
@access.public_view
def signin_page() -> Response | str | tuple[str, int, dict[str, str]]:
    """The sign-in page: WeChat, or a username and password (POST)."""
    target = _target(request.values.get("next", ""))
    try:
        if access.signed_in() is not None and request.method == "GET":
            return redirect(target)
    except access.SignedOut:
        pass  # the reason arrives in ?reason= from the page that sent the browser here
    if request.method == "GET":
        return render_template(
            "console/signin.html", next=target, reason=request.args.get("reason", "")
        )
    username = request.form.get("username", "")[:MAX_FIELD]
    password = request.form.get("password", "")[:MAX_FIELD]
    try:
        with transaction():
            minted = tokens.sign_in(None, username, password)
        token = _staff_token(minted)
    except ApiError as exc:
        page = render_template(
            "console/signin.html", next=target, error=exc.message, username=username
        )
        return page, exc.status, exc.headers  # Retry-After of too many tries
    access.begin(token)
    return redirect(target, 303)


@bp.get("/signin/wechat")
@access.public_view
def signin_wechat() -> Response:
    """Send the browser through WeChat OAuth, to come back to a console page."""
    state = signin.begin(_target(request.args.get("next", "")))
    return redirect(wechat.authorize_url(external_url("console.signin_callback"), state))


@bp.get("/signin/callback")
@access.public_view
def signin_callback() -> Response:
    """WeChat came back: a member of staff starts a console session."""
    target, minted = signin.finish_pages(
        request.args.get("state", ""), request.args.get("code", ""), bp.url_prefix, "the console"
    )
    access.begin(_staff_token(minted))
    return redirect(target)


@bp.post("/signout")
@access.console_view(*STAFF)
def signout() -> Response:
    """End this console session (here and in the store)."""
    access.end()
    return redirect(url_for("console.signin_page", reason="signed out"), 303)
