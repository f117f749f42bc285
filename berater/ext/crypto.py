"""Tokens: authenticated encryption (MultiFernet) of a small JSON payload.

The payload is never readable by the browser or partner apps: the openid stays inside.
New tokens use the first key of CRYPTO_KEYS; every listed key still decrypts, so a key can
be rotated in by putting it first and rotated out once TOKEN_MAX_AGE has passed.
"""

from __future__ import annotations

import binascii
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import Flask, current_app

from berater.ext import Extension
from berater.settings import ConfigError

MAX_TOKEN_CHARS = 2048


class TokenInvalid(Exception):
    """The token was not made by us with a current key, or was changed."""


class TokenExpired(Exception):
    """The token was valid but its lifetime is over."""


@dataclass(frozen=True)
class Claims:
    """What a token says: who, which roles, and when."""

    subject: str
    roles: tuple[str, ...]
    issued_at: float
    expires_at: int
    signed_in_at: float
    profile: dict[str, Any] = field(default_factory=dict)

    def to_payload(self) -> bytes:
        body: dict[str, Any] = {
            "s": self.subject,
            "r": list(self.roles),
            "iat": self.issued_at,
            "exp": self.expires_at,
            "sit": self.signed_in_at,
        }
        if self.profile:
            body["p"] = self.profile
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
                profile=dict(body.get("p") or {}),
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


class Crypto(Extension[MultiFernet]):
    """Flask extension that mints and reads tokens with the app's keys."""

    extension_key = "berater.crypto"
    label = "crypto"

    def create(self, app: Flask) -> MultiFernet:
        return build_fernet(list(app.config["CRYPTO_KEYS"]))

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
        return self.state.encrypt(claims.to_payload()).decode(), claims

    def read(self, token: str, now: float | None = None) -> Claims:
        """The claims of a token, or TokenInvalid / TokenExpired."""
        if not token or len(token) > MAX_TOKEN_CHARS:
            raise TokenInvalid("no token or too long")
        try:
            raw = self.state.decrypt(token.encode("ascii"))
        except (InvalidToken, UnicodeEncodeError):
            raise TokenInvalid("cannot decrypt") from None
        claims = Claims.from_payload(raw)
        if claims.expires_at <= (time.time() if now is None else now):
            raise TokenExpired("expired")
        return claims


def new_key() -> str:
    """A fresh key for CRYPTO_KEYS."""
    return Fernet.generate_key().decode()
