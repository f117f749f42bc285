"""Sign-in pages. Errors here render a page, since a person is looking."""

from __future__ import annotations

from flask import Response, current_app, redirect, render_template, request

from berater.db import transaction
from berater.errors import ApiError, BadRequest, NotFound
from berater.extensions import wechat
from berater.identity import services as tokens
from berater.signin import bp, services
from berater.urls import external_url


@bp.errorhandler(ApiError)
def show_error(exc: ApiError) -> tuple[str, int]:
    return render_template("signin/error.html", message=exc.message, status=exc.status), exc.status


@bp.get("/signin")
def start() -> Response:
    """Send the browser to WeChat's authorize page, with a state bound to this browser."""
    state = services.begin(request.args.get("next", ""))
    callback = external_url("signin.callback")
    return redirect(wechat.authorize_url(callback, state))


@bp.get("/signin/callback")
def callback() -> Response | str:
    """WeChat came back with a code: mint a token and land in the partner app."""
    target = services.finish(request.args.get("state", ""))
    code = request.args.get("code", "")
    if not code or len(code) > 128:
        raise BadRequest("WeChat did not send a sign-in code")
    with transaction():
        result = tokens.sign_in(code, None, None)
    if target:
        return redirect(services.landing_url(target, result["token"]))
    return render_template("signin/done.html", result=result)


@bp.get("/")
def index() -> str:
    """A start page: in development, links to click through the whole flow."""
    return render_template("index.html", dev=current_app.config["ENABLE_TEST_TOKEN"])


@bp.get("/demo/app")
def demo_app() -> str:
    """A stand-in partner app: reads the token from the fragment and asks who it is."""
    if not current_app.config["ENABLE_TEST_TOKEN"]:
        raise NotFound("the demo app exists in development only")
    return render_template("demo_app.html")
