"""The stand-in WeChat's account API: access tokens, menu and outgoing messages.

Registered by :meth:`standins.wechat.FakeWeChat.routes`. It checks what it receives
the way api.weixin.qq.com does and answers with WeChat's error codes (global return codes,
developers.weixin.qq.com > 公众号 > 全局返回码):

| errcode | meaning | when |
| --- | --- | --- |
| 41001 | access_token missing | no ``access_token`` query parameter |
| 40001 | invalid credential | a token this stand-in never issued, or revoked |
| 42001 | access_token expired | a token past its ``token_ttl`` |
| 44002 / 47001 | empty post data / data format error | no body / not a JSON object |
| 40097 | invalid args | getticket with a ``type`` other than ``jsapi`` |
| 40016 | invalid button count | 0 or more than 3 top-level buttons |
| 40017 | invalid button type | unknown ``type`` (or none on a leaf button) |
| 40018 | invalid button name size | top-level name empty or over 16 bytes |
| 40019 | invalid button key size | ``key`` empty or over 128 bytes |
| 40020 | invalid button url size | ``url`` empty or over 1024 bytes |
| 40023 | invalid sub button count | more than 5 sub-buttons |
| 40025 | invalid sub button name size | sub-button name empty or over 60 bytes |
| 40054 / 40055 | invalid (sub) button url domain | ``url`` not http(s) |
| 46003 | menu no exist | menu/get with no menu |
| 40003 | invalid openid | touser missing |
| 40037 | invalid template_id | template_id missing |
| 40008 | invalid message type | custom send of an unsupported msgtype |
| 45015 / 43004 | outside the 48-hour window / not subscribed | openids told so |
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from flask import Response, request

ERRMSGS = {
    40003: "invalid openid",
    40008: "invalid message type",
    40014: "invalid access_token",
    40016: "invalid button size",
    40017: "invalid button type",
    40018: "invalid button name size",
    40019: "invalid button key size",
    40020: "invalid button url size",
    40023: "invalid sub button size",
    40025: "invalid sub button name size",
    40037: "invalid template_id",
    40097: "invalid args",
    40054: "invalid sub button url domain",
    40055: "invalid button url domain",
    41001: "access_token missing",
    42001: "access_token expired",
    43004: "require subscribe",
    44002: "empty post data",
    45009: "reach max api daily quota limit",
    45011: "api minute-quota reach limit",
    45015: "response out of time limit or subscription is canceled",
    46003: "menu no exist",
    47001: "data format error",
}
# Button types of the custom menu (自定义菜单) and the field each one needs.
BUTTON_FIELDS = {
    "click": "key",
    "view": "url",
    "scancode_push": "key",
    "scancode_waitmsg": "key",
    "pic_sysphoto": "key",
    "pic_photo_or_album": "key",
    "pic_weixin": "key",
    "location_select": "key",
    "media_id": "media_id",
    "view_limited": "media_id",
    "article_id": "article_id",
    "article_view_limited": "article_id",
    "miniprogram": "url",
}
Respond = Callable[[Mapping[str, Any]], Response]


class WeChatApi:
    """State and views of the account API; owned by a FakeWeChat."""

    def __init__(self, respond: Respond, appid: str, secret: str, token_ttl: float) -> None:
        self._respond = respond
        self.appid = appid
        self.secret = secret
        self.token_ttl = token_ttl
        self._lock = threading.Lock()
        self._tokens: dict[str, float] = {}  # token -> expiry (monotonic)
        self._stable: str | None = None
        self.ticket_ttl = token_ttl
        self._ticket: tuple[str, float] | None = None  # jsapi_ticket and its expiry (monotonic)
        self.menu: dict[str, Any] | None = None
        self.sent: list[dict[str, Any]] = []
        self.refusals: dict[str, int] = {}  # openid -> 45015 or 43004
        self.last_body = b""  # the raw JSON body of the last POST, to check its encoding

    def reset(self) -> None:
        """Forget tokens, the menu, sent messages and refusals."""
        with self._lock:
            self._tokens.clear()
            self._stable = None
            self._ticket = None
            self.menu = None
            self.sent.clear()
            self.refusals.clear()

    def routes(self) -> list[tuple[str, Sequence[str], Callable[[], Response]]]:
        """(rule, methods, view) of every account API endpoint."""
        return [
            ("/cgi-bin/stable_token", ["POST"], self._stable_token),
            ("/cgi-bin/ticket/getticket", ["GET"], self._getticket),
            ("/cgi-bin/menu/create", ["POST"], self._menu_create),
            ("/cgi-bin/menu/get", ["GET"], self._menu_get),
            ("/cgi-bin/menu/delete", ["GET"], self._menu_delete),
            ("/cgi-bin/message/template/send", ["POST"], self._template_send),
            ("/cgi-bin/message/custom/send", ["POST"], self._custom_send),
        ]

    # -- tokens --------------------------------------------------------------------------------

    def issue_token(self) -> str:
        """A new access token valid for ``token_ttl`` seconds (what /cgi-bin/token does)."""
        token = secrets.token_urlsafe(48)
        with self._lock:
            self._tokens[token] = time.monotonic() + self.token_ttl
        return token

    def token_state(self, token: str) -> int:
        """0 for a valid token, else WeChat's errcode for it (41001, 40001, 42001)."""
        if not token:
            return 41001
        with self._lock:
            expiry = self._tokens.get(token)
        if expiry is None:
            return 40001
        return 42001 if time.monotonic() >= expiry else 0

    def revoke_tokens(self) -> None:
        """Make every issued token unknown, as a token fetched elsewhere would."""
        with self._lock:
            self._tokens.clear()
            self._stable = None

    def expires_in(self) -> int:
        return max(1, round(self.token_ttl))

    def _error(self, errcode: int) -> Response:
        return self._respond({"errcode": errcode, "errmsg": ERRMSGS.get(errcode, "error")})

    def _stable_token(self) -> Response:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return self._error(47001)
        if body.get("grant_type") != "client_credential":
            return self._respond({"errcode": 40002, "errmsg": "invalid grant_type"})
        if body.get("appid") != self.appid:
            return self._respond({"errcode": 40013, "errmsg": "invalid appid"})
        secret = str(body.get("secret", "")).encode()
        if not secrets.compare_digest(secret, self.secret.encode()):
            return self._respond({"errcode": 40125, "errmsg": "invalid appsecret"})
        # The stable token stays the same while valid; force_refresh replaces it and the old
        # one stops working, as WeChat documents.
        current = self._stable
        if body.get("force_refresh") is True or not current or self.token_state(current):
            with self._lock:
                if current:
                    self._tokens.pop(current, None)
            current = self.issue_token()
            self._stable = current
        with self._lock:
            left = self._tokens.get(current, 0.0) - time.monotonic()
        return self._respond({"access_token": current, "expires_in": max(1, round(left))})

    # -- JS-SDK ticket -------------------------------------------------------------------------

    @property
    def jsapi_ticket(self) -> str | None:
        """The jsapi_ticket WeChat holds now (what a signature must be made with), or None."""
        with self._lock:
            if self._ticket is None or time.monotonic() >= self._ticket[1]:
                return None
            return self._ticket[0]

    def revoke_tickets(self) -> None:
        """Forget the jsapi_ticket: the next getticket hands out a new one."""
        with self._lock:
            self._ticket = None

    def _getticket(self) -> Response:
        error = self._authorized()
        if error is not None:
            return error
        if request.args.get("type") != "jsapi":
            return self._error(40097)
        now = time.monotonic()
        with self._lock:
            # Like WeChat: the same ticket while it is valid, its full life announced.
            if self._ticket is None or now >= self._ticket[1]:
                self._ticket = (secrets.token_urlsafe(64), now + self.ticket_ttl)
            ticket = self._ticket[0]
        expires_in = max(1, round(self.ticket_ttl))
        return self._respond(
            {"errcode": 0, "errmsg": "ok", "ticket": ticket, "expires_in": expires_in}
        )

    def check_jssdk(self, config: Mapping[str, Any], url: str) -> str:
        """What WeChat's `wx.config` reports for `config` on the page at `url`: "config:ok",
        or "config:invalid signature" (the signature, computed here on its own, does not
        match the current ticket, the page without its fragment, the nonce and timestamp)."""
        ticket = self.jsapi_ticket
        if ticket is None or config.get("appId") != self.appid:
            return "config:invalid signature"
        fields = {
            "jsapi_ticket": ticket,
            "noncestr": config.get("nonceStr"),
            "timestamp": config.get("timestamp"),
            "url": url.split("#", 1)[0],
        }
        string1 = "&".join(f"{name}={fields[name]}" for name in sorted(fields))
        expected = hashlib.sha1(string1.encode("utf-8")).hexdigest()  # noqa: S324 - WeChat's
        ok = secrets.compare_digest(expected, str(config.get("signature", "")))
        return "config:ok" if ok else "config:invalid signature"

    def _authorized(self) -> Response | None:
        state = self.token_state(request.args.get("access_token", ""))
        return self._error(state) if state else None

    def _json_body(self) -> dict[str, Any] | Response:
        self.last_body = request.get_data()
        if not request.get_data():
            return self._error(44002)
        try:
            body = json.loads(request.get_data().decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return self._error(47001)
        return body if isinstance(body, dict) else self._error(47001)

    # -- menu ----------------------------------------------------------------------------------

    def _menu_create(self) -> Response:
        error = self._authorized()
        if error is not None:
            return error
        body = self._json_body()
        if isinstance(body, Response):
            return body
        errcode = check_menu(body)
        if errcode:
            return self._error(errcode)
        with self._lock:
            self.menu = {"button": body["button"]}
        return self._error_ok()

    def _menu_get(self) -> Response:
        error = self._authorized()
        if error is not None:
            return error
        with self._lock:
            menu = self.menu
        if menu is None:
            return self._error(46003)
        return self._respond({"menu": menu})

    def _menu_delete(self) -> Response:
        error = self._authorized()
        if error is not None:
            return error
        with self._lock:
            self.menu = None
        return self._error_ok()

    # -- messages ------------------------------------------------------------------------------

    def _template_send(self) -> Response:
        return self._send("template")

    def _custom_send(self) -> Response:
        return self._send("custom")

    def _send(self, kind: str) -> Response:
        error = self._authorized()
        if error is not None:
            return error
        body = self._json_body()
        if isinstance(body, Response):
            return body
        touser = body.get("touser")
        if not isinstance(touser, str) or not touser:
            return self._error(40003)
        if kind == "template":
            if not isinstance(body.get("template_id"), str) or not body["template_id"]:
                return self._error(40037)
        else:
            text = body.get("text")
            if body.get("msgtype") != "text":
                return self._error(40008)
            if not isinstance(text, dict) or not isinstance(text.get("content"), str):
                return self._error(47001)
        with self._lock:
            refusal = self.refusals.get(touser)
            if refusal:
                return self._error(refusal)
            self.sent.append({"kind": kind, **body})
        answer: dict[str, Any] = {"errcode": 0, "errmsg": "ok"}
        if kind == "template":
            answer["msgid"] = secrets.randbelow(10**12)
        return self._respond(answer)

    def _error_ok(self) -> Response:
        return self._respond({"errcode": 0, "errmsg": "ok"})


def check_menu(body: Mapping[str, Any]) -> int:
    """0 when ``body`` is a menu WeChat accepts, else the errcode WeChat answers."""
    buttons = body.get("button")
    if not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
        return 40016
    for button in buttons:
        if not isinstance(button, dict):
            return 47001
        if not 1 <= _size(button.get("name")) <= 16:
            return 40018
        subs = button.get("sub_button")
        if subs:  # a parent: only a name and its children
            if not isinstance(subs, list) or len(subs) > 5:
                return 40023
            for sub in subs:
                if not isinstance(sub, dict):
                    return 47001
                if not 1 <= _size(sub.get("name")) <= 60:
                    return 40025
                errcode = _check_leaf(sub, url_domain_code=40054)
                if errcode:
                    return errcode
            continue
        errcode = _check_leaf(button, url_domain_code=40055)
        if errcode:
            return errcode
    return 0


def _check_leaf(button: Mapping[str, Any], url_domain_code: int) -> int:
    field = BUTTON_FIELDS.get(str(button.get("type")))
    if field is None:
        return 40017
    if field == "key" and not 1 <= _size(button.get("key")) <= 128:
        return 40019
    if field == "url":
        size = _size(button.get("url"))
        if not 1 <= size <= 1024:
            return 40020
        if urlsplit(str(button["url"])).scheme not in ("http", "https"):
            return url_domain_code
    if field in ("media_id", "article_id") and not _size(button.get(field)):
        return 47001
    return 0


def _size(value: Any) -> int:
    """UTF-8 byte length (WeChat counts bytes: a Chinese character is 3); -1 for non-strings."""
    return len(value.encode("utf-8")) if isinstance(value, str) else -1
