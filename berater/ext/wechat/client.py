"""The one way code here calls the WeChat API: `call()` and the helpers built on it.

Plain requests, not wechatpy's WeChatClient: that client refreshes its own access token with
no lock between processes, so it would cut off the token the keeper shares. Every call adds
the keeper's token, uses WECHAT_TIMEOUT, sends JSON as raw UTF-8 (WeChat shows `\\u4e2d`
escapes literally), and turns WeChat's errcodes into our errors without echoing its errmsg.
"""

from __future__ import annotations

import json as jsonlib
import logging
import time
from typing import Any

import requests
from flask import current_app

from berater import metrics
from berater.errors import Conflict, UpstreamError
from berater.ext.wechat import keeper

log = logging.getLogger("berater.wechat")

# The token was rejected: invalid credential, invalid token, token expired.
TOKEN_REJECTED = frozenset({40001, 40014, 42001})
QUOTA_OR_BUSY = frozenset({-1, 45009, 45011})
NO_MENU = 46003
SEND_ATTEMPTS = 3
SEND_BACKOFF = 0.2  # seconds, doubled after each failed attempt
RECIPIENT_ERRORS = {
    45015: "the user has not written to the account in the last 48 hours, "
    "so WeChat allows no customer-service message now",
    43004: "the user does not follow the account, so WeChat allows no message",
}


class WeChatError(UpstreamError):
    """WeChat refused a call; `errcode` says why (its errmsg is never passed on)."""

    def __init__(self, errcode: int, message: str | None = None) -> None:
        message = message or f"WeChat refused the request (errcode {errcode})"
        super().__init__(message, {"errcode": errcode})
        self.errcode = errcode


class RecipientUnavailable(Conflict):
    """WeChat will not deliver to this user now (45015: outside 48 h; 43004: not following)."""

    def __init__(self, errcode: int) -> None:
        super().__init__(RECIPIENT_ERRORS[errcode], {"errcode": errcode})
        self.errcode = errcode


class _Transient(Exception):
    """A failure worth another try: WeChat busy, HTTP 5xx, or no connection (connect timeout)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def call(
    method: str,
    path: str,
    *,
    params: dict[str, Any] | None = None,
    json: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Call `path` with the access token; a rejected token is renewed and the call retried once."""
    try:
        return _call(method, path, params, json)
    except _Transient as exc:
        raise exc.error from None


def _call(
    method: str, path: str, params: dict[str, Any] | None, body: dict[str, Any] | None
) -> dict[str, Any]:
    for attempt in (1, 2):
        token = keeper.access_token()
        answer = _request(method, path, params, body, token)
        errcode = int(answer.get("errcode") or 0)
        if errcode in TOKEN_REJECTED:
            log.warning("wechat %s: access token rejected (errcode %s)", path, errcode)
            keeper.invalidate(token)
            if attempt == 1:
                continue
        if errcode:
            raise _error(path, errcode)
        return answer
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def _request(
    method: str,
    path: str,
    params: dict[str, Any] | None,
    body: dict[str, Any] | None,
    token: str,
) -> dict[str, Any]:
    cfg = current_app.config
    url = cfg["WECHAT_API_BASE"].rstrip("/") + path
    data, headers = None, {}
    if body is not None:
        data = jsonlib.dumps(body, ensure_ascii=False).encode("utf-8")
        headers["Content-Type"] = "application/json; charset=utf-8"
    with metrics.upstream("wechat", path) as call:
        try:
            resp = requests.request(
                method,
                url,
                params={**(params or {}), "access_token": token},
                data=data,
                headers=headers,
                timeout=cfg["WECHAT_TIMEOUT"],
            )
        except (requests.ConnectTimeout, requests.ConnectionError):
            # Nothing reached WeChat, so another try cannot send a message twice.
            log.warning("wechat %s: cannot connect", path)
            call["error"] = "unreachable"
            raise _Transient(UpstreamError("WeChat could not be reached")) from None
        except requests.Timeout:
            # Not retried: WeChat may have acted on the request (SECURITY.md: no automatic
            # retry of non-idempotent calls), and a second wait would double the delay.
            log.warning("wechat %s: no answer in time", path)
            call["error"] = "timeout"
            raise UpstreamError("WeChat did not answer in time") from None
        if resp.status_code >= 500:
            log.warning("wechat %s: HTTP %s", path, resp.status_code)
            call["error"] = "http_5xx"
            raise _Transient(UpstreamError("WeChat failed, try again shortly"))
        try:
            answer = resp.json()
        except ValueError:
            answer = None
        if resp.status_code != 200 or not isinstance(answer, dict):
            log.warning("wechat %s: unreadable answer (HTTP %s)", path, resp.status_code)
            call["error"] = "unreadable"
            raise UpstreamError("WeChat gave an unreadable answer")
        errcode = answer.get("errcode")
        if errcode:
            call["error"] = f"errcode_{int(errcode) if isinstance(errcode, int) else 'other'}"
    return answer


def _error(path: str, errcode: int) -> Exception:
    if errcode in QUOTA_OR_BUSY:
        error = keeper.token_error(errcode)
        # Busy is worth another try for the senders; quotas are not (they last minutes).
        return _Transient(error) if errcode == -1 else error
    if errcode in RECIPIENT_ERRORS:
        log.info("wechat %s: recipient unavailable (errcode %s)", path, errcode)
        return RecipientUnavailable(errcode)
    log.warning("wechat %s: refused with errcode %s", path, errcode)
    return WeChatError(errcode)


def _send(payload: dict[str, Any], path: str) -> dict[str, Any]:
    """POST a message, retrying a bounded number of times on transient failures only."""
    delay = SEND_BACKOFF
    for attempt in range(1, SEND_ATTEMPTS + 1):
        try:
            return _call("POST", path, None, payload)
        except _Transient as exc:
            if attempt == SEND_ATTEMPTS:
                raise exc.error from None
            log.info("wechat %s: transient failure, attempt %d of %d", path, attempt, SEND_ATTEMPTS)
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")  # pragma: no cover


def send_text(openid: str, text: str) -> None:
    """Send a customer-service text message (only within 48 h of the user's last message)."""
    payload = {"touser": openid, "msgtype": "text", "text": {"content": text}}
    _send(payload, "/cgi-bin/message/custom/send")


def send_template(
    openid: str, template_id: str, data: dict[str, Any], url: str | None = None
) -> int | None:
    """Send a template message; `data` maps each field to a string or {"value", "color"}.

    Returns WeChat's msgid.
    """
    fields = {k: v if isinstance(v, dict) else {"value": str(v)} for k, v in data.items()}
    payload: dict[str, Any] = {"touser": openid, "template_id": template_id, "data": fields}
    if url:
        payload["url"] = url
    answer = _send(payload, "/cgi-bin/message/template/send")
    msgid = answer.get("msgid")
    return msgid if isinstance(msgid, int) else None


def create_menu(menu: dict[str, Any]) -> None:
    """Replace the account's custom menu with `menu` ({"button": [...]})."""
    call("POST", "/cgi-bin/menu/create", json=menu)


def get_menu() -> dict[str, Any]:
    """The account's custom menu ({"button": [...]}); {"button": []} when there is none."""
    try:
        answer = call("GET", "/cgi-bin/menu/get")
    except WeChatError as exc:
        if exc.errcode == NO_MENU:
            return {"button": []}
        raise
    menu = answer.get("menu")
    if not isinstance(menu, dict) or not isinstance(menu.get("button", []), list):
        raise UpstreamError("WeChat gave an unreadable answer")
    return {"button": menu.get("button", [])}


def delete_menu() -> None:
    """Remove the account's custom menu."""
    call("GET", "/cgi-bin/menu/delete")


__all__ = [
    "RecipientUnavailable",
    "WeChatError",
    "call",
    "create_menu",
    "delete_menu",
    "get_menu",
    "send_template",
    "send_text",
]
