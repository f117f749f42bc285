"""Sign-in pages. Errors here render a page, since a person is looking."""

from __future__ import annotations

from flask import current_app, redirect, render_template, request
from werkzeug.wrappers import Response

from berater.db import transaction
from berater.errors import ApiError, NotFound, Unauthorized
from berater.extensions import wechat
from berater.http import no_store
from berater.identity import services as tokens
from berater.signin import bp, services
from berater.urls import external_url

HINTS = {
    400: "这个登录链接无法使用。请从公众号菜单重新进入。",
    401: "微信登录没有成功（登录码无效或已经用过）。请从公众号菜单重新进入。",
    404: "页面不存在。",
    429: "操作太频繁，请稍后再试。",
    502: "微信暂时没有响应，请稍后再试。",
    503: "服务暂时不可用，请稍后再试。",
}


@bp.errorhandler(ApiError)
def show_error(exc: ApiError) -> tuple[str, int, dict[str, str]]:
    hint = getattr(exc, "hint", None) or HINTS.get(exc.status, "出错了，请稍后再试。")
    page = render_template("signin/error.html", message=exc.message, status=exc.status, hint=hint)
    return page, exc.status, exc.headers  # Retry-After of a 429 or of the upstream limit's 503


def _to_wechat(state: str) -> Response:
    return redirect(wechat.authorize_url(external_url("signin.callback"), state))


@bp.get("/signin")
@no_store
def start() -> Response:
    """Send the browser to WeChat's authorize page, with a state bound to this browser."""
    state = services.begin(request.args.get("next", ""))
    services.forget()
    return _to_wechat(state)


@bp.get("/signin/callback")
@no_store
def callback() -> Response | str:
    """WeChat came back with a code: mint a token and land in the partner app (or, for a
    landing by type without its binding, on the registration page first)."""
    try:
        landing = services.finish_landing(request.args.get("state", ""))
    except services.StaleSignIn:
        again = services.restart()  # a refreshed callback of a landing by type
        if again is None:
            raise
        return _to_wechat(again)
    code = services.check_code(request.args.get("code", ""))
    try:
        with transaction():
            result = tokens.sign_in(code, None, None)
    except Unauthorized:
        again = services.restart() if landing.kind else None  # a code used twice
        if again is None:
            raise
        return _to_wechat(again)
    except ApiError as exc:
        if exc.status >= 500:  # WeChat or the upstream limit: a reload later signs in anew
            services.remember(landing)
        raise
    if landing.kind:
        services.remember(landing)
        return redirect(services.after_sign_in(landing, result))
    if landing.target:
        return redirect(services.landing_url(landing.target, result["token"]))
    return render_template("signin/done.html", result=result)


@bp.get("/")
@no_store  # the landing by type starts a sign-in (its state in the session)
def index() -> Response | str:
    """The landing by type (`?type=student|candidate&url=<target>`), the original's menu
    address; without them a start page (in development, links through every flow)."""
    if "type" in request.args or "url" in request.args:
        kind = services.check_kind(request.args.get("type", ""))
        return _to_wechat(services.begin_landing(request.args.get("url", ""), kind))
    config = current_app.config
    return render_template("index.html", dev=config["ENABLE_TEST_TOKEN"], docs=config["API_DOCS"])


@bp.get("/demo/app")
def demo_app() -> str:
    """A stand-in partner app: reads the token from the fragment and asks who it is."""
    if not current_app.config["ENABLE_TEST_TOKEN"]:
        raise NotFound("the demo app exists in development only")
    return render_template("demo_app.html")
