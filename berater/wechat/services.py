"""JS-SDK signatures: WeChat's `wx.config` checks them against the page it runs on."""

from __future__ import annotations

import hashlib
import secrets
import string
import time
from typing import Any

from flask import current_app

from berater.errors import BadRequest
from berater.ext.wechat import ticket
from berater.urls import partner_page

NONCE_CHARS = string.ascii_letters + string.digits
NONCE_LENGTH = 16


def signature(jsapi_ticket: str, noncestr: str, timestamp: int, url: str) -> str:
    """WeChat's JS-SDK signature: sha1 of the four fields sorted by name, joined as
    `key=value&...` with their raw values (nothing escaped), in lowercase hex."""
    fields = {
        "jsapi_ticket": jsapi_ticket,
        "noncestr": noncestr,
        "timestamp": timestamp,
        "url": url,
    }
    string1 = "&".join(f"{key}={fields[key]}" for key in sorted(fields))
    return hashlib.sha1(string1.encode("utf-8")).hexdigest()  # noqa: S324 - fixed by the protocol


def page_url(url: str) -> str:
    """The URL to sign: `url` without its `#fragment`, when it is a page on a partner host
    or this service's; BadRequest otherwise (nothing is fetched from WeChat for it)."""
    if not partner_page(url):
        raise BadRequest("that page is not on an allowed host (SIGNIN_REDIRECT_HOSTS)")
    return url.split("#", 1)[0]


def sign(url: str) -> dict[str, Any]:
    """`wx.config`'s appId, timestamp, nonceStr and signature for the page at `url`."""
    signed_url = page_url(url)
    nonce = "".join(secrets.choice(NONCE_CHARS) for _ in range(NONCE_LENGTH))
    timestamp = int(time.time())
    value = signature(ticket.jsapi_ticket(), nonce, timestamp, signed_url)
    return {
        "appId": current_app.config["WECHAT_APPID"],
        "timestamp": timestamp,
        "nonceStr": nonce,
        "signature": value,
    }
