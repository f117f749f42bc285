"""The account's access token: one for every worker and instance, kept in the store.

WeChat allows 2000 token fetches a day and, on the classic endpoint, each fetch cuts off the
token other processes hold. So the token lives in the store (area "wechat") until about five
minutes before it expires, and exactly one process fetches a new one at a time: it takes a
lock in the store (set-if-absent with a timeout, so a crashed holder cannot block the others
for long), reads the cache again, and only then asks WeChat. The others poll the cache for
up to WECHAT_TOKEN_WAIT seconds and use the token the holder stored.

wechatpy's client keeps its own token with no lock across processes, so the keeper fetches
the token itself with requests, and berater/ext/wechat/client.py adds it to every call.
"""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any

import requests
from flask import current_app

from berater.errors import ServiceUnavailable, TooManyRequests, UpstreamError
from berater.extensions import store

log = logging.getLogger("berater.wechat")

AREA = "wechat"
TOKEN_KEY = "access_token"  # noqa: S105 - a store key name, not a secret
LOCK_KEY = "access_token:lock"
# The token last reported invalid (40001...): if WeChat hands the same one back, force a new one.
BAD_KEY = "access_token:bad"
MARGIN = 300  # seconds before WeChat's expiry at which the cached token is dropped
LOCK_TTL = 10.0  # longer than one fetch (connect 2 s + read 3 s), short if the holder dies
POLL = 0.05
ENDPOINTS = ("stable", "classic")

# Compare-and-delete: only remove a key that still holds the value we know, so a late
# invalidation or lock release cannot remove a newer token or another process's lock.
_DELETE_IF = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def access_token() -> str:
    """The account's access token, from the store or, for exactly one process, from WeChat."""
    token = store.get(AREA, TOKEN_KEY)
    if token:
        return token
    wait = float(current_app.config["WECHAT_TOKEN_WAIT"])
    deadline = time.monotonic() + wait
    while True:
        owner = secrets.token_hex(16)
        if store.set_if_absent(AREA, LOCK_KEY, owner, LOCK_TTL):
            try:
                # Another process may have stored a token between our read and our lock.
                token = store.get(AREA, TOKEN_KEY)
                return token or _refresh()
            finally:
                _delete_if(LOCK_KEY, owner)
        time.sleep(POLL)
        token = store.get(AREA, TOKEN_KEY)
        if token:
            return token
        if time.monotonic() >= deadline:
            log.warning("wechat access token: gave up waiting for the refreshing process")
            raise ServiceUnavailable("the WeChat access token is being renewed, try again shortly")


def invalidate(token: str) -> None:
    """Drop `token` from the store if it is still the cached one (WeChat rejected it)."""
    if not token:
        return
    store.set(AREA, BAD_KEY, token, ttl=LOCK_TTL * 6)
    _delete_if(TOKEN_KEY, token)


def _delete_if(key: str, value: str) -> None:
    store.script(_DELETE_IF)(keys=[store.key(AREA, key)], args=[value])


def _refresh() -> str:
    """Fetch a token from WeChat and cache it; called only by the lock holder."""
    bad = store.get(AREA, BAD_KEY)
    token, expires_in = _fetch(force=False)
    if bad and token == bad:
        # The stable endpoint returns the current token while WeChat thinks it valid; we were
        # told it is not, so ask for a new one (rare: WeChat limits forced refreshes).
        token, expires_in = _fetch(force=True)
    ttl = expires_in - MARGIN if expires_in > 2 * MARGIN else expires_in / 2
    store.set(AREA, TOKEN_KEY, token, ttl=max(1.0, ttl))
    store.delete(AREA, BAD_KEY)
    log.info("wechat access token renewed, cached for %d s", int(ttl))
    return token


def _fetch(force: bool) -> tuple[str, int]:
    """Ask WeChat for a token: (token, expires_in seconds)."""
    cfg = current_app.config
    base = cfg["WECHAT_API_BASE"].rstrip("/")
    endpoint = cfg["WECHAT_TOKEN_ENDPOINT"]
    try:
        if endpoint == "classic":
            params = {
                "grant_type": "client_credential",
                "appid": cfg["WECHAT_APPID"],
                "secret": cfg["WECHAT_SECRET"],
            }
            resp = requests.get(
                base + "/cgi-bin/token", params=params, timeout=cfg["WECHAT_TIMEOUT"]
            )
        else:
            body = {
                "grant_type": "client_credential",
                "appid": cfg["WECHAT_APPID"],
                "secret": cfg["WECHAT_SECRET"],
                "force_refresh": force,
            }
            resp = requests.post(
                base + "/cgi-bin/stable_token", json=body, timeout=cfg["WECHAT_TIMEOUT"]
            )
        if resp.status_code >= 500:
            raise ValueError(f"HTTP {resp.status_code}")
        answer: Any = resp.json()
    except requests.Timeout:
        log.warning("wechat access token: WeChat did not answer in time")
        raise UpstreamError("WeChat did not answer in time") from None
    except (requests.RequestException, ValueError):
        log.warning("wechat access token: unreadable answer from WeChat")
        raise UpstreamError("WeChat gave an unreadable answer") from None
    if not isinstance(answer, dict):
        raise UpstreamError("WeChat gave an unreadable answer")
    errcode = answer.get("errcode") or 0
    if errcode:
        raise token_error(int(errcode))
    token, expires_in = answer.get("access_token"), answer.get("expires_in")
    if not isinstance(token, str) or not token or not isinstance(expires_in, int):
        raise UpstreamError("WeChat gave an unreadable answer")
    return token, expires_in


def token_error(errcode: int) -> Exception:
    """The error for a token fetch WeChat refused (never its errmsg)."""
    log.warning("wechat access token refused: errcode %s", errcode)
    if errcode == -1:
        return ServiceUnavailable("WeChat is busy, try again shortly")
    if errcode == 45009:
        return ServiceUnavailable("WeChat's daily API quota for this account is used up")
    if errcode == 45011:
        return TooManyRequests("WeChat's per-minute API limit is reached", retry_after=60)
    if errcode in (40013, 40125, 40164, 40243):
        return UpstreamError(
            f"WeChat refused the account's credentials or this server's IP (errcode {errcode})"
        )
    return UpstreamError(f"WeChat refused the access token request (errcode {errcode})")
