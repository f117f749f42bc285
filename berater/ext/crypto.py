"""Tokens: authenticated encryption (MultiFernet) of a small JSON payload.

The payload is never readable by the browser or partner apps: the openid stays inside.
New tokens use the first key of CRYPTO_KEYS; every listed key still decrypts, so a key can
be rotated in by putting it first and rotated out once TOKEN_MAX_AGE has passed.

A client sends the same token with every request until it expires, so each app keeps the
claims of the last TOKEN_CACHE tokens it opened: a token seen before costs a dictionary
look-up instead of a decryption. Only the exact string that was decrypted and
authenticated hits the cache, the keys cannot change while the app runs, and the expiry
is checked on every read, as revocation is by the caller.
"""

from __future__ import annotations

import binascii
import functools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, cast

import orjson
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import Flask, current_app

from berater.ext import Extension
from berater.settings import ConfigError

MAX_TOKEN_CHARS = 2048
TOKEN_CACHE = 4096  # opened tokens kept per app (a few MiB at most)


class TokenInvalid(Exception):
    """The token was not made by us with a current key, or was changed."""


class TokenExpired(Exception):
    """The token was valid but its lifetime is over."""


@dataclass(frozen=True)
class Claims:
    """What a token says: who, which roles, and when. Read-only: the claims of a token are
    shared by every request that sends it."""

    subject: str
    roles: tuple[str, ...]
    issued_at: float
    expires_at: int
    signed_in_at: float
    profile: Mapping[str, Any] = field(default_factory=dict)

    def to_payload(self) -> bytes:
        body: dict[str, Any] = {
            "s": self.subject,
            "r": list(self.roles),
            "iat": self.issued_at,
            "exp": self.expires_at,
            "sit": self.signed_in_at,
        }
        if self.profile:
            body["p"] = dict(self.profile)
        return orjson.dumps(body)

    @classmethod
    def from_payload(cls, raw: bytes) -> Claims:
        try:
            body = orjson.loads(raw)
            return cls(
                subject=str(body["s"]),
                roles=tuple(str(r) for r in body["r"]),
                issued_at=float(body["iat"]),
                expires_at=int(body["exp"]),
                signed_in_at=float(body["sit"]),
                profile=MappingProxyType(dict(body.get("p") or {})),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            raise TokenInvalid("malformed payload") from None


def build_fernet(keys: list[str]) -> MultiFernet:
    """A MultiFernet over `keys`, newest first; a bad key is a ConfigError naming CRYPTO_KEYS."""
    if not keys:
        raise ConfigError("CRYPTO_KEYS is empty: set at least one key (flask keys new)")
    fernets = []
    for position, key in enumerate(keys, start=1):
        try:
            fernets.append(Fernet(key.encode()))
        except (ValueError, binascii.Error):
            raise ConfigError(
                f"CRYPTO_KEYS entry {position} is not a Fernet key (32 url-safe base64 bytes)"
            ) from None
    return MultiFernet(fernets)


@dataclass(frozen=True)
class Keys:
    """An app's keys, and its cache of opened tokens."""

    fernet: MultiFernet
    open: Callable[[str], Claims]  # a token's claims, or TokenInvalid; expiry not checked


def load_keys(keys: list[str]) -> Keys:
    fernet = build_fernet(keys)

    @functools.lru_cache(maxsize=TOKEN_CACHE)  # failures raise, and are not kept
    def open_token(token: str) -> Claims:
        try:
            raw = fernet.decrypt(token.encode("ascii"))
        except (InvalidToken, UnicodeEncodeError):
            raise TokenInvalid("cannot decrypt") from None
        return Claims.from_payload(raw)

    return Keys(fernet, open_token)


class Crypto(Extension[Keys]):
    """Flask extension that mints and reads tokens with the app's keys."""

    extension_key = "berater.crypto"
    label = "crypto"

    def create(self, app: Flask) -> Keys:
        return load_keys(list(app.config["CRYPTO_KEYS"]))

    def keys_of(self, app: Flask) -> Keys:
        """The keys of `app`, for a caller that holds the app already."""
        return cast(Keys, app.extensions[self.extension_key])

    def mint(
        self,
        subject: str,
        roles: tuple[str, ...] | list[str],
        profile: dict[str, Any] | None = None,
        signed_in_at: float | None = None,
        issued_at: float | None = None,
    ) -> tuple[str, Claims]:
        """A new token for `subject`; `signed_in_at` carries over on refresh. `issued_at`
        (default: now) may be earlier than now, never later; expiry counts from it."""
        now = time.time() if issued_at is None else min(issued_at, time.time())
        signed_in = now if signed_in_at is None else signed_in_at
        ttl = int(current_app.config["TOKEN_TTL"])
        claims = Claims(
            subject=subject,
            roles=tuple(sorted(set(roles))),
            issued_at=round(now, 3),
            expires_at=int(now) + ttl,
            signed_in_at=round(signed_in, 3),
            profile=profile or {},
        )
        return self.state.fernet.encrypt(claims.to_payload()).decode(), claims

    def read(self, token: str, now: float | None = None, app: Flask | None = None) -> Claims:
        """The claims of a token, or TokenInvalid / TokenExpired (`app`: the current one,
        when the caller holds it already)."""
        if not token or len(token) > MAX_TOKEN_CHARS:
            raise TokenInvalid("no token or too long")
        claims = (self.state if app is None else self.keys_of(app)).open(token)
        if claims.expires_at <= (time.time() if now is None else now):
            raise TokenExpired("expired")
        return claims


def new_key() -> str:
    """A fresh key for CRYPTO_KEYS."""
    return Fernet.generate_key().decode()
