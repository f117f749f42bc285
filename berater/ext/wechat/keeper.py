"""Values WeChat hands out for a while and that every worker and instance shares: the
account's access token and, built on the same machinery, the JS-SDK's jsapi_ticket
(berater/ext/wechat/ticket.py).

WeChat allows 2000 token fetches a day and, on the classic endpoint, each fetch cuts off the
token other processes hold; the ticket's fetches are as limited. So each value lives in the
store (area "wechat") until about five minutes before it expires, and exactly one process
fetches a new one at a time: it takes a lock in the store (set-if-absent with a timeout, so a
crashed holder cannot block the others for long), reads the cache again, and only then asks
WeChat. The others poll the cache for up to WECHAT_TOKEN_WAIT seconds and use the value the
holder stored. A value WeChat rejected is dropped with `invalidate`, and remembered for a
minute so that, if WeChat hands the same one back, the holder asks for a fresh one.

wechatpy's client keeps its own token with no lock across processes, so the keeper fetches
the token itself with requests, and berater/ext/wechat/client.py adds it to every call.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests
from flask import current_app

from berater import metrics
from berater.errors import ServiceUnavailable, TooManyRequests, UpstreamError
from berater.extensions import store

log = logging.getLogger("berater.wechat")

AREA = "wechat"
MARGIN = 300  # seconds before WeChat's expiry at which a cached value is dropped
LOCK_TTL = 10.0  # longer than one token fetch (connect 2 s + read 3 s), short if the holder dies
POLL = 0.05
ENDPOINTS = ("stable", "classic")

# Compare-and-delete: only remove a key that still holds the value we know, so a late
# invalidation or lock release cannot remove a newer value or another process's lock.
_DELETE_IF = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# fetch(force) -> (value, expires_in seconds); `force` asks WeChat for a new value rather
# than the current one, where WeChat offers that.
Fetch = Callable[[bool], tuple[str, int]]


@dataclass(frozen=True)
class Kept:
    """One shared value: its name (for logs and messages), its store key and how to fetch it."""

    name: str
    key: str
    fetch: Fetch
    lock_ttl: float = LOCK_TTL
    can_force: bool = True  # whether fetch(True) gets a new value when WeChat holds one

    @property
    def lock_key(self) -> str:
        return f"{self.key}:lock"

    @property
    def bad_key(self) -> str:
        # The value last reported invalid: if WeChat hands the same one back, force a new one.
        return f"{self.key}:bad"

    def get(self) -> str:
        """The value, from the store or, for exactly one process, from WeChat."""
        value = store.get(AREA, self.key)
        if value:
            return value
        wait = float(current_app.config["WECHAT_TOKEN_WAIT"])
        deadline = time.monotonic() + wait
        while True:
            owner = secrets.token_hex(16)
            if store.set_if_absent(AREA, self.lock_key, owner, self.lock_ttl):
                try:
                    # Another process may have stored one between our read and our lock.
                    value = store.get(AREA, self.key)
                    return value or self._refresh()
                finally:
                    _delete_if(self.lock_key, owner)
            time.sleep(POLL)
            value = store.get(AREA, self.key)
            if value:
                return value
            if time.monotonic() >= deadline:
                log.warning("wechat %s: gave up waiting for the refreshing process", self.name)
                raise ServiceUnavailable(
                    f"the WeChat {self.name} is being renewed, try again shortly"
                )

    def invalidate(self, value: str) -> None:
        """Drop `value` from the store if it is still the cached one (WeChat rejected it)."""
        if not value:
            return
        store.set(AREA, self.bad_key, value, ttl=LOCK_TTL * 6)
        _delete_if(self.key, value)

    def _refresh(self) -> str:
        """Fetch from WeChat and cache; called only by the lock holder."""
        bad = store.get(AREA, self.bad_key)
        value, expires_in = self._counted(False)
        if bad and value == bad and self.can_force:
            # WeChat returns the current value while it thinks it valid; we were told it is
            # not, so ask for a new one (rare: WeChat limits forced refreshes).
            value, expires_in = self._counted(True)
        ttl = expires_in - MARGIN if expires_in > 2 * MARGIN else expires_in / 2
        store.set(AREA, self.key, value, ttl=max(1.0, ttl))
        store.delete(AREA, self.bad_key)
        log.info("wechat %s renewed, cached for %d s", self.name, int(ttl))
        return value

    def _counted(self, force: bool) -> tuple[str, int]:
        """`fetch(force)`, counted in the refreshes metric by outcome."""
        try:
            found = self.fetch(force)
        except Exception:
            metrics.WECHAT_REFRESHES.labels(self.key, "error").inc()
            raise
        metrics.WECHAT_REFRESHES.labels(self.key, "ok").inc()
        return found


def _delete_if(key: str, value: str) -> None:
    store.script(_DELETE_IF)(keys=[store.key(AREA, key)], args=[value])


def _fetch(force: bool) -> tuple[str, int]:
    """Ask WeChat for a token: (token, expires_in seconds); timed as an upstream call."""
    endpoint = current_app.config["WECHAT_TOKEN_ENDPOINT"]
    operation = "/cgi-bin/token" if endpoint == "classic" else "/cgi-bin/stable_token"
    with metrics.upstream("wechat", operation):
        return _ask(force)


def _ask(force: bool) -> tuple[str, int]:
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


ACCESS_TOKEN = Kept("access token", "access_token", _fetch)


def access_token() -> str:
    """The account's access token, from the store or, for exactly one process, from WeChat."""
    return ACCESS_TOKEN.get()


def invalidate(token: str) -> None:
    """Drop `token` from the store if it is still the cached one (WeChat rejected it)."""
    ACCESS_TOKEN.invalidate(token)
