"""Tokens are encrypted and authenticated; keys rotate without signing anyone out."""

from __future__ import annotations

import base64
import time

import pytest
from cryptography.fernet import Fernet

from berater.ext.crypto import TokenExpired, TokenInvalid
from berater.extensions import crypto


def test_a_token_carries_its_claims(ctx):
    token, claims = crypto.mint("o_abc", ["student"], {"stuid": "202600001"})
    read = crypto.read(token)
    assert read == claims
    assert read.subject == "o_abc"
    assert read.roles == ("student",)
    assert read.profile == {"stuid": "202600001"}
    assert read.expires_at - int(read.issued_at) == ctx.config["TOKEN_TTL"]


def test_the_openid_cannot_be_read_from_the_token(ctx):
    token, _ = crypto.mint("o_secret_openid_123", ["student"])
    raw = base64.urlsafe_b64decode(token)
    assert b"o_secret_openid_123" not in raw
    assert b"student" not in raw


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-4] + ("AAAA" if not t.endswith("AAAA") else "BBBB"),
        lambda t: t[: len(t) // 2],
        lambda t: t[:20] + ("x" if t[20] != "x" else "y") + t[21:],
        lambda t: "",
        lambda t: "not a token",
        lambda t: t + "=" * 3000,
        lambda t: "gAAAAA" + "é" * 10,
    ],
    ids=[
        "tampered-tail",
        "truncated",
        "flipped-byte",
        "empty",
        "garbage",
        "oversized",
        "non-ascii",
    ],
)
def test_a_changed_or_broken_token_is_invalid(ctx, mangle):
    token, _ = crypto.mint("o_abc", [])
    with pytest.raises(TokenInvalid):
        crypto.read(mangle(token))


def test_an_expired_token_is_refused(ctx):
    token, claims = crypto.mint("o_abc", [])
    with pytest.raises(TokenExpired):
        crypto.read(token, now=claims.expires_at + 1)


def test_a_token_from_an_unknown_key_is_invalid(make_app):
    other = make_app(CRYPTO_KEYS=[Fernet.generate_key().decode()])
    with other.app_context():
        token, _ = crypto.mint("o_abc", [])
    with make_app().app_context(), pytest.raises(TokenInvalid):
        crypto.read(token)


def test_keys_rotate_without_signing_anyone_out(make_app):
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    with make_app(CRYPTO_KEYS=[old_key]).app_context():
        old_token, _ = crypto.mint("o_abc", ["student"])
    rotated = make_app(CRYPTO_KEYS=[new_key, old_key])
    with rotated.app_context():
        assert crypto.read(old_token).subject == "o_abc"
        new_token, _ = crypto.mint("o_abc", ["student"])
    # New tokens are made with the first key: the new key alone reads them.
    with make_app(CRYPTO_KEYS=[new_key]).app_context():
        assert crypto.read(new_token).subject == "o_abc"
        with pytest.raises(TokenInvalid):
            crypto.read(old_token)


def test_refresh_keeps_the_original_sign_in_time(ctx):
    signed_in = time.time() - 3600
    token, _ = crypto.mint("o_abc", [], signed_in_at=signed_in)
    assert crypto.read(token).signed_in_at == pytest.approx(signed_in, abs=0.001)


def test_a_token_read_before_is_still_refused_once_expired(ctx):
    # The second read is answered from the app's cache of opened tokens.
    token, claims = crypto.mint("o_abc", [])
    assert crypto.read(token) == claims
    with pytest.raises(TokenExpired):
        crypto.read(token, now=claims.expires_at + 1)


def test_the_claims_of_a_token_cannot_be_changed_by_a_reader(ctx):
    token, _ = crypto.mint("o_abc", ["student"], {"stuid": "202600001"})
    with pytest.raises(TypeError):
        crypto.read(token).profile["stuid"] = "202600002"  # type: ignore[index]
    assert crypto.read(token).profile == {"stuid": "202600001"}
