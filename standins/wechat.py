"""Stand-in WeChat API server speaking WeChat's HTTP protocol (development and tests only).

Run it in-process with :func:`running`, or as a separate process with
``python -m standins.wechat --port 5001``.
"""

from __future__ import annotations

import argparse
import html
import json
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from flask import Flask, Response, request

from standins import serving
from standins.wechat_api import ERRMSGS as API_ERRMSGS
from standins.wechat_api import WeChatApi

_log = logging.getLogger(__name__)

OPENID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
PRESET_OPENIDS = ("o_dev_student", "o_dev_candidate", "o_dev_admin", "o_dev_newcomer")
FAULT_MODES = ("errcode", "http500", "timeout", "html")
ERRMSGS = {
    -1: "system error",
    40001: "invalid credential",
    40002: "invalid grant_type",
    40013: "invalid appid",
    40029: "invalid code",
    40125: "invalid appsecret",
    40163: "code been used",
    **API_ERRMSGS,
}
CONTROL_PREFIX = "/_standin/"
AUTHORIZE_PATH = "/connect/oauth2/authorize"
# WeChat serves its JS-SDK from res.wx.qq.com/open/js/; the stand-in's plays its wx.config.
JWEIXIN_PATH = "/open/js/jweixin-1.6.0.js"


def wechat_error(errcode: int, errmsg: str | None = None) -> Response:
    """A WeChat-style error: HTTP 200 with an ``errcode``/``errmsg`` JSON body."""
    return json_response({"errcode": errcode, "errmsg": errmsg or ERRMSGS.get(errcode, "error")})


def json_response(body: Mapping[str, Any], status: int = 200) -> Response:
    """Serialise ``body`` as a UTF-8 JSON response."""
    return Response(json.dumps(body, ensure_ascii=False), status, mimetype="application/json")


@dataclass
class _Code:
    openid: str
    scope: str
    issued_at: float
    used: bool = False


@dataclass
class _Fault:
    mode: str
    errcode: int
    remaining: int | None  # None: until cleared


class FakeWeChat:
    """State of the stand-in: app credentials, issued codes, call counts and injected faults."""

    def __init__(
        self,
        appid: str = "wx_dev_appid",
        secret: str = "dev-wechat-secret",  # noqa: S107 - a stand-in's well-known dev value
        code_ttl: float = 300.0,
        timeout_sleep: float = 5.0,
        token_ttl: float = 7200.0,
        latency: float = 0.0,
    ) -> None:
        self.appid = appid
        self.secret = secret
        self.code_ttl = code_ttl
        self.timeout_sleep = timeout_sleep
        # Seconds every OAuth code exchange waits before it is answered, as WeChat takes
        # 100-300 ms (bench/results_day.py); settable while serving.
        self.latency = latency
        self._lock = threading.Lock()
        self._codes: dict[str, _Code] = {}
        self._calls: dict[str, int] = {}
        self._faults: dict[str, list[_Fault]] = {}
        # Access tokens, menu and messages (standins/wechat_api.py).
        self.api = WeChatApi(json_response, appid, secret, token_ttl)

    def __repr__(self) -> str:  # never show the secret
        return f"FakeWeChat(appid={self.appid!r})"

    # -- state helpers -------------------------------------------------------------------------

    @property
    def calls(self) -> dict[str, int]:
        """A snapshot of request counts per path (control endpoints excluded)."""
        with self._lock:
            return dict(self._calls)

    def calls_to(self, path: str) -> int:
        """How many times ``path`` was requested."""
        with self._lock:
            return self._calls.get(path, 0)

    def reset(self) -> None:
        """Forget call counts, issued codes, access tokens and faults."""
        with self._lock:
            self._calls.clear()
            self._codes.clear()
            self._faults.clear()
        self.api.reset()

    def issue_code(self, openid: str, scope: str = "snsapi_base") -> str:
        """Create a single-use OAuth code for ``openid``, as the authorize page does."""
        if not OPENID_RE.match(openid):
            raise ValueError("openid must match " + OPENID_RE.pattern)
        code = secrets.token_urlsafe(24)
        with self._lock:
            self._codes[code] = _Code(openid, scope, time.monotonic())
        return code

    def is_access_token(self, token: str) -> bool:
        """Whether ``token`` is an access token this stand-in issued and still accepts."""
        return self.api.token_state(token) == 0

    @property
    def token_ttl(self) -> float:
        """Seconds an access token lives (7200 at WeChat); tests shorten it."""
        return self.api.token_ttl

    @token_ttl.setter
    def token_ttl(self, seconds: float) -> None:
        self.api.token_ttl = seconds

    @property
    def sent(self) -> list[dict[str, Any]]:
        """Template and customer-service messages accepted, oldest first (a copy)."""
        return list(self.api.sent)

    @property
    def menu(self) -> dict[str, Any] | None:
        """The menu last created, or None."""
        return self.api.menu

    @property
    def jsapi_ticket(self) -> str | None:
        """The JS-SDK ticket handed out and still valid, or None."""
        return self.api.jsapi_ticket

    def revoke_tickets(self) -> None:
        """Forget the JS-SDK ticket: the next getticket hands out a new one."""
        self.api.revoke_tickets()

    def refuse(self, openid: str, errcode: int) -> None:
        """Answer messages to ``openid`` with 45015 (outside 48 h) or 43004 (not subscribed)."""
        if errcode not in (45015, 43004):
            raise ValueError("errcode must be 45015 or 43004")
        self.api.refusals[openid] = errcode

    def revoke_tokens(self) -> None:
        """Make every access token unknown (40001), as one fetched elsewhere would."""
        self.api.revoke_tokens()

    def fail(self, path: str, mode: str, errcode: int | None = None, times: int | None = 1) -> None:
        """Queue a fault for ``path``; ``times`` 0 or None means until :meth:`clear_faults`."""
        if mode not in FAULT_MODES:
            raise ValueError(f"mode must be one of {FAULT_MODES}")
        if not path.startswith("/") or path.startswith(CONTROL_PREFIX):
            raise ValueError("path must be an API path such as /cgi-bin/token")
        if times is not None and times < 0:
            raise ValueError("times must be >= 0 (0 or None: until cleared)")
        fault = _Fault(mode, -1 if errcode is None else int(errcode), int(times) if times else None)
        with self._lock:
            self._faults.setdefault(path, []).append(fault)

    def clear_faults(self) -> None:
        """Remove all queued faults."""
        with self._lock:
            self._faults.clear()

    def _record_call(self, path: str) -> _Fault | None:
        """Count a call to ``path`` and consume the next fault queued for it, if any."""
        with self._lock:
            self._calls[path] = self._calls.get(path, 0) + 1
            queue = self._faults.get(path)
            if not queue:
                return None
            fault = queue[0]
            if fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    queue.pop(0)
            return fault

    def _check_app(self, args: Mapping[str, str]) -> Response | None:
        if args.get("appid") != self.appid:
            return wechat_error(40013)
        if not secrets.compare_digest(args.get("secret", "").encode(), self.secret.encode()):
            return wechat_error(40125)
        return None

    # -- HTTP app ------------------------------------------------------------------------------

    def routes(self) -> list[tuple[str, Sequence[str], Callable[[], Response]]]:
        """(rule, methods, view) for every endpoint; add new WeChat endpoints here."""
        return [
            ("/sns/oauth2/access_token", ["GET"], self._sns_access_token),
            ("/cgi-bin/token", ["GET"], self._cgi_token),
            *self.api.routes(),
            (AUTHORIZE_PATH, ["GET"], self._authorize_page),
            (AUTHORIZE_PATH, ["POST"], self._authorize_submit),
            (CONTROL_PREFIX + "calls", ["GET"], self._control_calls),
            (CONTROL_PREFIX + "reset", ["POST"], self._control_reset),
            (CONTROL_PREFIX + "fail", ["POST"], self._control_fail),
            (CONTROL_PREFIX + "code", ["POST"], self._control_code),
            (JWEIXIN_PATH, ["GET"], self._jweixin),
            (CONTROL_PREFIX + "jssdk/verify", ["POST"], self._control_jssdk_verify),
        ]

    def make_app(self) -> Flask:
        """Build a Flask app serving this fake's endpoints."""
        app = Flask(__name__)
        for rule, methods, view in self.routes():
            app.add_url_rule(rule, f"{view.__name__}_{'_'.join(methods)}", view, methods=methods)
        app.before_request(self._before_request)
        return app

    def _before_request(self) -> Response | None:
        if request.path.startswith(CONTROL_PREFIX):
            return None
        fault = self._record_call(request.path)
        if fault is None:
            return None
        if fault.mode == "timeout":
            time.sleep(self.timeout_sleep)
            return None  # answer normally, but too late for the client
        if fault.mode == "http500":
            return Response("Internal Server Error", 500, mimetype="text/plain")
        if fault.mode == "html":
            return Response("<html>busy</html>", 200, mimetype="text/html")
        return wechat_error(fault.errcode, ERRMSGS.get(fault.errcode, "standin fault"))

    def _sns_access_token(self) -> Response:
        args = request.args
        error = self._check_app(args)
        if error is not None:
            return error
        if args.get("grant_type") != "authorization_code":
            return wechat_error(40002)
        code = args.get("code", "")
        if self.latency > 0:
            time.sleep(self.latency)
        with self._lock:
            record = self._codes.get(code)
            if record is None:
                return wechat_error(40029)
            if record.used:
                return wechat_error(40163)
            if time.monotonic() - record.issued_at > self.code_ttl:
                return wechat_error(40029)
            record.used = True
        token, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        body = {"access_token": token, "expires_in": 7200, "refresh_token": refresh}
        return json_response(body | {"openid": record.openid, "scope": record.scope})

    def _cgi_token(self) -> Response:
        error = self._check_app(request.args)
        if error is not None:
            return error
        if request.args.get("grant_type") != "client_credential":
            return wechat_error(40002)
        token = self.api.issue_token()
        return json_response({"access_token": token, "expires_in": self.api.expires_in()})

    def _authorize_params(self, values: Mapping[str, str]) -> tuple[dict[str, str], str | None]:
        """Return the authorize parameters and an error message (or None if they are valid)."""
        params = {k: values.get(k, "") for k in ("appid", "redirect_uri", "scope", "state")}
        parts = urlsplit(params["redirect_uri"])
        if params["appid"] != self.appid:
            return params, "appid 无效 / invalid appid"
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return params, "redirect_uri 无效 / redirect_uri must be an absolute http(s) URL"
        return params, None

    def _authorize_page(self) -> Response:
        params, error = self._authorize_params(request.args)
        if error:
            return _error_page(error)
        return Response(_render_authorize(params), 200, mimetype="text/html")

    def _authorize_submit(self) -> Response:
        params, error = self._authorize_params(request.form)
        if error:
            return _error_page(error)
        openid = (request.form.get("preset") or request.form.get("openid", "")).strip()
        if not OPENID_RE.match(openid):
            return _error_page("openid 无效 / openid must match " + OPENID_RE.pattern)
        code = self.issue_code(openid, params["scope"] or "snsapi_base")
        parts = urlsplit(params["redirect_uri"])
        query = parse_qsl(parts.query, keep_blank_values=True)
        query = [(k, v) for k, v in query if k not in ("code", "state")]
        query += [("code", code), ("state", params["state"])]
        location = urlunsplit(parts._replace(query=urlencode(query)))
        return Response(status=302, headers={"Location": location})

    def _control_calls(self) -> Response:
        return json_response(self.calls)

    def _control_reset(self) -> Response:
        self.reset()
        return json_response({"ok": True})

    def _control_fail(self) -> Response:
        body = request.get_json(silent=True) or {}
        path, mode = str(body.get("path", "")), str(body.get("mode", ""))
        try:
            self.fail(path, mode, body.get("errcode"), body.get("times", 1))
        except (TypeError, ValueError) as exc:
            return json_response({"error": str(exc)}, 400)
        return json_response({"ok": True})

    def _jweixin(self) -> Response:
        return Response(_JWEIXIN, 200, mimetype="text/javascript")

    def _control_jssdk_verify(self) -> Response:
        # Sent as text/plain by the stand-in JS-SDK (a simple request: no preflight), from a
        # partner page on another origin, which may read the answer.
        try:
            body = json.loads(request.get_data().decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("url"), str):
            answer = json_response({"errMsg": "config:fail"}, 400)
        else:
            answer = json_response({"errMsg": self.api.check_jssdk(body, body["url"])})
        answer.headers["Access-Control-Allow-Origin"] = "*"
        return answer

    def _control_code(self) -> Response:
        body = request.get_json(silent=True) or {}
        openid, scope = str(body.get("openid", "")), str(body.get("scope", "snsapi_base"))
        try:
            code = self.issue_code(openid, scope)
        except ValueError as exc:
            return json_response({"error": str(exc)}, 400)
        return json_response({"code": code})


# The stand-in JS-SDK: `wx.config(...)` asks the stand-in to check the signature for this page
# (as WeChat's client does), then runs the `wx.ready` or `wx.error` callbacks.
_JWEIXIN = """(function () {
  "use strict";
  var base = new URL(document.currentScript.src).origin;
  var state = { result: null, ready: [], error: [] };
  function settle() {
    if (!state.result) return;
    var list = state.result.errMsg === "config:ok" ? state.ready : state.error;
    while (list.length) list.shift()(state.result);
  }
  window.wx = {
    standin: true,
    config: function (config) {
      var body = JSON.stringify({
        appId: config.appId, timestamp: config.timestamp, nonceStr: config.nonceStr,
        signature: config.signature, url: location.href.split("#")[0]
      });
      fetch(base + "/_standin/jssdk/verify", { method: "POST", body: body })
        .then(function (r) { return r.json(); })
        .catch(function () { return { errMsg: "config:fail" }; })
        .then(function (result) { state.result = result; settle(); });
    },
    ready: function (fn) { state.ready.push(function () { fn(); }); settle(); },
    error: function (fn) { state.error.push(fn); settle(); }
  };
})();
"""


_PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>body{{font-family:sans-serif;max-width:32rem;margin:2rem auto;padding:0 1rem}}
button,input{{font-size:1rem;padding:.4rem;margin:.2rem 0}}</style>
</head><body>{body}</body></html>"""


def _error_page(message: str) -> Response:
    body = f"<h1>授权出错 / Authorization error</h1><p>{html.escape(message)}</p>"
    return Response(_PAGE.format(title="Error", body=body), 400, mimetype="text/html")


def _render_authorize(params: Mapping[str, str]) -> str:
    e = html.escape
    hidden = "".join(
        f'<input type="hidden" name="{e(k)}" value="{e(v)}">' for k, v in params.items()
    )
    presets = "".join(
        f'<p><button name="preset" value="{e(o)}" formnovalidate>{e(o)}</button></p>'
        for o in PRESET_OPENIDS
    )
    # The typed-openid button comes first: pressing Enter submits the first button.
    body = f"""<h1>微信授权（模拟） / WeChat sign-in (stand-in)</h1>
<p>应用 / App: <code>{e(params["appid"])}</code><br>
范围 / Scope: <code>{e(params["scope"])}</code><br>
state: <code>{e(params["state"])}</code><br>
跳转 / Redirect: <code>{e(params["redirect_uri"])}</code></p>
<form method="post" action="{AUTHORIZE_PATH}">{hidden}
<h2>输入 openid / Type an openid</h2>
<p><label>openid <input name="openid" pattern="[A-Za-z0-9_\\-]{{1,64}}" maxlength="64"></label>
<button type="submit">登录 / Sign in</button></p>
<h2>或选择用户 / Or pick a user</h2>{presets}
</form>"""
    return _PAGE.format(title="微信授权 / WeChat sign-in", body=body)


RunningWeChat = serving.Running[FakeWeChat]


def running(
    fake: FakeWeChat | None = None, host: str = "127.0.0.1", port: int = 0
) -> RunningWeChat:
    """Start a threaded stand-in server (port 0 = any free port) and return its handle."""
    fake = FakeWeChat() if fake is None else fake
    return serving.Running(fake, host, port, _log)


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the stand-in in the foreground until interrupted."""
    parser = argparse.ArgumentParser(description="Stand-in WeChat API server (development only).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5001)
    parser.add_argument("--appid", default="wx_dev_appid")
    parser.add_argument("--secret", default="dev-wechat-secret")
    parser.add_argument("--code-ttl", type=float, default=300.0)
    parser.add_argument("--token-ttl", type=float, default=7200.0)
    parser.add_argument(
        "--latency", type=float, default=0.0, help="seconds before each code exchange answer"
    )
    args = parser.parse_args(argv)
    fake = FakeWeChat(
        appid=args.appid,
        secret=args.secret,
        code_ttl=args.code_ttl,
        token_ttl=args.token_ttl,
        latency=args.latency,
    )
    serving.serve_forever(fake, args.host, args.port, _log, "WeChat stand-in")


if __name__ == "__main__":
    main()
