"""WeChat: the OAuth code exchange, the access-token keeper and the API client."""

from __future__ import annotations

from urllib.parse import urlencode

from flask import Flask, current_app

from berater.ext import Extension
from berater.ext.upstream import upstream_slot
from berater.ext.wechat.oauth import exchange_code


class WeChat(Extension["WeChat"]):
    """Flask extension for the account's WeChat calls; it reads the app's settings per call."""

    extension_key = "berater.wechat"
    label = "wechat"

    def create(self, app: Flask) -> WeChat:
        return self

    def openid_for_code(self, code: str) -> str:
        """Exchange a one-time OAuth `code` for the user's openid."""
        cfg = current_app.config
        with upstream_slot("wechat oauth"):  # past the limit: 503 at once (ext/upstream.py)
            return exchange_code(
                cfg["WECHAT_API_BASE"],
                cfg["WECHAT_APPID"],
                cfg["WECHAT_SECRET"],
                code,
                cfg["WECHAT_TIMEOUT"],
            )

    def authorize_url(self, redirect_uri: str, state: str, scope: str = "snsapi_base") -> str:
        """The WeChat page that asks the user and comes back to `redirect_uri` with a code."""
        query = urlencode(
            {
                "appid": current_app.config["WECHAT_APPID"],
                "redirect_uri": redirect_uri,
                "response_type": "code",
                "scope": scope,
                "state": state,
            }
        )
        base = current_app.config["WECHAT_OAUTH_BASE"].rstrip("/")
        return f"{base}/connect/oauth2/authorize?{query}#wechat_redirect"
