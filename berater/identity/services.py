"""Minting, refreshing and describing tokens."""

from __future__ import annotations

import time
from typing import Any

from flask import current_app

from berater import metrics
from berater.db import began_at
from berater.errors import Forbidden, Unauthorized
from berater.extensions import crypto, wechat
from berater.identity import accounts, revocation
from berater.identity.auth import Identity
from berater.identity.roles import CANDIDATE, STUDENT
from berater.identity.subjects import ACCOUNT_PREFIX, roles_for


def issue_token(subject: str, signed_in_at: float | None = None) -> dict[str, Any]:
    """A token with the roles `subject` holds now.

    It is issued at the start of the transaction that reads the roles (now, when none is in
    progress yet), not when it is minted: a role taken away by a commit that read did not
    see is then marked after the token's issue time (berater.identity.revocation).
    """
    issued_at = began_at()
    if issued_at is None:
        issued_at = time.time()  # before roles_for begins the transaction
    roles, profile = roles_for(subject)
    token, claims = crypto.mint(subject, roles, profile, signed_in_at, issued_at=issued_at)
    metrics.TOKENS_MINTED.labels(_kind(subject)).inc()
    return {
        "token": token,
        "student": STUDENT in roles,
        "candidate": CANDIDATE in roles,
        "roles": list(claims.roles),
        "expires_in": claims.expires_at - int(claims.issued_at),
    }


def _kind(subject: str) -> str:
    return "account" if subject.startswith(ACCOUNT_PREFIX) else "wechat"


def sign_in(code: str | None, username: str | None, password: str | None) -> dict[str, Any]:
    """A token for a WeChat OAuth code, or for a username and password."""
    if code is not None:
        subject = wechat.openid_for_code(code)
    else:
        subject = accounts.authenticate(username or "", password or "")
    return issue_token(subject)


def refresh(identity: Identity) -> dict[str, Any]:
    """A new token with today's roles, until TOKEN_MAX_AGE after the original sign-in, and for
    a password account only while it is enabled."""
    if identity.claims is None:
        raise Forbidden("app tokens are configured, not refreshed")
    age = time.time() - identity.claims.signed_in_at
    if age > current_app.config["TOKEN_MAX_AGE"]:
        raise Unauthorized("the sign-in is too old to refresh; sign in again")
    # Disabling signs the account out, but through a mark in the store that may have failed
    # to be written or been lost: a refresh asks the database again.
    if identity.subject.startswith(ACCOUNT_PREFIX) and not accounts.is_active(
        identity.subject.removeprefix(ACCOUNT_PREFIX)
    ):
        raise Unauthorized("the account is disabled; it cannot refresh")
    return issue_token(identity.subject, identity.claims.signed_in_at)


def describe(identity: Identity) -> dict[str, Any]:
    """What a partner app may know about the bearer: never the openid."""
    claims = identity.claims
    data: dict[str, Any] = {
        "kind": identity.kind,
        "roles": sorted(identity.roles),
        "student": STUDENT in identity.roles,
        "candidate": CANDIDATE in identity.roles,
        "stuid": identity.profile.get("stuid"),
        "admission_id": identity.profile.get("admission_id"),
        "username": None,
        "expires_at": claims.expires_at if claims else None,
        "signed_in_at": int(claims.signed_in_at) if claims else None,
    }
    if identity.subject.startswith(ACCOUNT_PREFIX):
        data["username"] = identity.subject.removeprefix(ACCOUNT_PREFIX)
    return data


def sign_out(identity: Identity) -> None:
    """Revoke every token of the bearer issued until now."""
    if identity.claims is None:
        raise Forbidden("app tokens are configured, not signed out")
    revocation.sign_out(identity.subject)
