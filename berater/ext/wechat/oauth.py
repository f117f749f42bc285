"""OAuth code exchange through wechatpy's client, pointed at WECHAT_API_BASE, with timeouts."""

from __future__ import annotations

import logging
from typing import Any

import requests
from wechatpy.exceptions import WeChatOAuthException
from wechatpy.oauth import WeChatOAuth

from berater import metrics
from berater.errors import ServiceUnavailable, Unauthorized, UpstreamError

log = logging.getLogger("berater.wechat")

# WeChat's answers for a code that cannot be used (invalid, used, expired, not ours).
BAD_CODE = {40029, 40163, 41008, 40030}
BUSY = {-1, 45009, 45011}


class _OAuthClient(WeChatOAuth):
    """wechatpy's OAuth client with our API base and a timeout on every call."""

    def __init__(self, api_base: str, appid: str, secret: str, timeout: Any) -> None:
        super().__init__(appid, secret, redirect_uri="", scope="snsapi_base")
        self.API_BASE_URL = api_base.rstrip("/") + "/"
        self._timeout = timeout

    def _request(self, method: str, url_or_endpoint: str, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", self._timeout)
        return super()._request(method, url_or_endpoint, **kwargs)


def exchange_code(api_base: str, appid: str, secret: str, code: str, timeout: Any) -> str:
    """The openid for a one-time OAuth code; the code goes out as a query parameter."""
    client = _OAuthClient(api_base, appid, secret, timeout)
    try:
        with metrics.upstream("wechat", "/sns/oauth2/access_token") as call:
            try:
                answer = client.fetch_access_token(code)
            except WeChatOAuthException as exc:
                call["error"] = f"errcode_{exc.errcode}"
                raise
    except WeChatOAuthException as exc:
        if exc.errcode in BAD_CODE:
            raise Unauthorized("the WeChat code is invalid, expired or already used") from None
        if exc.errcode in BUSY:
            log.warning("wechat oauth busy: errcode %s", exc.errcode)
            raise ServiceUnavailable("WeChat is busy, try again shortly") from None
        log.warning("wechat oauth failed: errcode %s", exc.errcode)
        raise UpstreamError("WeChat refused the sign-in") from None
    except requests.Timeout:
        log.warning("wechat oauth timed out")
        raise UpstreamError("WeChat did not answer in time") from None
    except (requests.RequestException, ValueError):
        log.warning("wechat oauth gave an unreadable answer")
        raise UpstreamError("WeChat gave an unreadable answer") from None
    openid = answer.get("openid") if isinstance(answer, dict) else None
    if not isinstance(openid, str) or not openid or len(openid) > 64:
        raise UpstreamError("WeChat gave an unreadable answer")
    return openid
