"""The shared store: Redis at REDIS_URL, or the embedded server when REDIS_URL is empty.

Keys are namespaced `berater:<area>:<key>`. Every failure to reach the server becomes
`StoreUnavailable` (503), within about REDIS_SOCKET_TIMEOUT; the connection pool reconnects
on its own once the server is back.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar, cast

import redis
from flask import Flask
from redis.backoff import NoBackoff
from redis.retry import Retry

from berater.errors import StoreUnavailable
from berater.ext import Extension, embedded_redis

P = ParamSpec("P")
R = TypeVar("R")
PREFIX = "berater"


def _guard(fn: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            raise StoreUnavailable() from exc

    return wrapper


def connect(url: str, instance_path: str, timeout: float) -> redis.Redis:
    """A client for `url`, or for the embedded server of `instance_path` when `url` is empty."""
    options: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "decode_responses": True,
        # One quick retry covers a connection the server closed while idle; more would
        # stretch an outage past the one-second answer SECURITY.md asks for. Timeouts are
        # not retried: a hung server would otherwise cost two full timeouts per call.
        "retry": Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
        "health_check_interval": 30,
    }
    if url:
        return redis.Redis.from_url(url, **options)
    path = embedded_redis.ensure_running(instance_path)
    return redis.Redis(unix_socket_path=str(path), **options)


class Store(Extension[redis.Redis]):
    """Flask extension: `store.get("sms", key)`, counters, set-if-absent, get-and-delete."""

    extension_key = "berater.store"
    label = "the store"

    def create(self, app: Flask) -> redis.Redis:
        return connect(
            app.config["REDIS_URL"], app.instance_path, app.config["REDIS_SOCKET_TIMEOUT"]
        )

    @property
    def client(self) -> redis.Redis:
        """The raw client of the current app, for scripts and pipelines."""
        return self.state

    @staticmethod
    def key(area: str, key: str) -> str:
        """The namespaced key for `key` in `area`."""
        return f"{PREFIX}:{area}:{key}"

    @_guard
    def get(self, area: str, key: str) -> str | None:
        return cast(str | None, self.client.get(self.key(area, key)))

    @_guard
    def set(self, area: str, key: str, value: str | int | float, ttl: float | None = None) -> None:
        self.client.set(self.key(area, key), value, px=_ms(ttl))

    @_guard
    def set_if_absent(self, area: str, key: str, value: str | int | float, ttl: float) -> bool:
        """Store `value` only when the key is free; True when this call stored it."""
        return bool(self.client.set(self.key(area, key), value, px=_ms(ttl), nx=True))

    @_guard
    def get_and_delete(self, area: str, key: str) -> str | None:
        """Read and remove in one step: of two concurrent callers only one gets the value."""
        return cast(str | None, self.client.getdel(self.key(area, key)))

    @_guard
    def delete(self, area: str, *keys: str) -> int:
        return int(self.client.delete(*(self.key(area, k) for k in keys))) if keys else 0

    @_guard
    def incr(self, area: str, key: str, ttl: float, amount: int = 1) -> int:
        """Add to a counter; the window (ttl) starts with the first increment."""
        name = self.key(area, key)
        with self.client.pipeline() as pipe:
            pipe.set(name, 0, px=_ms(ttl), nx=True)  # EXPIRE NX needs Redis 7; this is 6.2
            pipe.incrby(name, amount)
            _, count = pipe.execute()
        return int(count)

    @_guard
    def ttl(self, area: str, key: str) -> float | None:
        """Seconds left before the key expires; None when it is absent or never expires."""
        left = self.client.pttl(self.key(area, key))
        return left / 1000 if left and left > 0 else None

    @_guard
    def ping(self) -> bool:
        return bool(self.client.ping())

    def script(self, source: str) -> Callable[..., Any]:
        """Register a Lua script; calling it maps connection failures to StoreUnavailable."""
        return _guard(self.client.register_script(source))


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else max(1, int(seconds * 1000))
