"""Who is calling: `token_required(*roles)` and the `current_identity` proxy.

`Authorization: Bearer <token>` carries a user token; `Authorization: Bearer <app> <secret>`
lets a partner app in with the role named after it. The scheme name is case-insensitive;
anything else (one part, four parts, doubled spaces, an empty secret, an unknown or
unconfigured app) is a 401 that grants nothing.
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar, cast

from flask import Flask, Request, current_app, g, request
from werkzeug.local import LocalProxy

from berater import metrics
from berater.errors import Forbidden, Unauthorized
from berater.ext.crypto import Claims, TokenExpired, TokenInvalid
from berater.extensions import crypto
from berater.http import check_json_body, checks_body_after_auth, no_store
from berater.identity import revocation
from berater.identity.subjects import ACCOUNT_PREFIX, roles_for

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class Identity:
    """The caller of this request."""

    subject: str
    roles: frozenset[str]
    kind: str  # "wechat", "account" or "app"
    claims: Claims | None = None
    profile: Mapping[str, Any] = field(default_factory=dict)

    def has_any(self, roles: tuple[str, ...]) -> bool:
        return not roles or bool(self.roles.intersection(roles))


def get_identity() -> Identity:
    """The caller of this request, as `current_identity` but without the proxy, for code
    that reads several of its fields."""
    identity: Identity | None = g.get("berater_identity")
    if identity is None:
        raise RuntimeError("current_identity is only set inside a token_required view")
    return identity


current_identity: Identity = cast(Identity, LocalProxy(get_identity))


def token_required(*roles: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Let the request in with a valid token holding any of `roles` (any token when none).

    The token and the roles are checked before the body: the app's body hook leaves this
    view's body alone, and it is checked here once the caller may call (415, 400, 413), so
    that a caller without a token gets 401, and one without the role 403, whatever it sent.
    Its answers, errors included, are never stored by a cache (`http.no_store`): they carry
    a token, an identity or personal data.
    """

    def decorator(view: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(view)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            req = request._get_current_object()  # type: ignore[attr-defined]
            identity = authenticate(req)
            if not identity.has_any(roles):
                metrics.token_check("forbidden")
                raise Forbidden(f"this endpoint needs one of the roles: {', '.join(roles)}")
            metrics.token_check("ok")
            g.berater_identity = identity
            check_json_body(req)
            return view(*args, **kwargs)

        wrapper.required_roles = roles  # type: ignore[attr-defined]
        return no_store(checks_body_after_auth(wrapper))

    return decorator


def wechat_openid(doing: str) -> str:
    """The bearer's openid; Forbidden for password accounts and apps, which have none.

    `doing` finishes the message: "only a WeChat sign-in can <doing>".
    """
    if current_identity.kind != "wechat":
        raise Forbidden(f"only a WeChat sign-in can {doing}")
    return current_identity.subject


def authenticate(req: Request | None = None) -> Identity:
    """The identity behind the Authorization header, or Unauthorized (`req`: the current
    request, when the caller holds it already)."""
    environ = (request if req is None else req).environ
    header = environ.get("HTTP_AUTHORIZATION", "")
    if not header:
        metrics.token_check("missing")
        raise Unauthorized("send Authorization: Bearer <token>")
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if len(header) > app.config["MAX_AUTH_HEADER"]:
        metrics.token_check("malformed")
        raise Unauthorized("the Authorization header is too long")
    parts = header.split(" ")
    if parts[0].lower() != "bearer" or not all(parts):
        metrics.token_check("malformed")
        raise Unauthorized("send Authorization: Bearer <token>")
    if len(parts) == 2:
        return identity_from_token(parts[1], app)
    if len(parts) == 3:
        return _app_identity(parts[1], parts[2])
    metrics.token_check("malformed")
    raise Unauthorized("send Authorization: Bearer <token> or Bearer <app> <app_token>")


def identity_from_token(token: str, app: Flask | None = None) -> Identity:
    """Read a user token, apply revocations and role changes (`app`: the current one, when
    the caller holds it already)."""
    try:
        claims = crypto.read(token, app=app)
    except TokenExpired:
        metrics.token_check("expired")
        raise Unauthorized("the token has expired; sign in again or refresh") from None
    except TokenInvalid:
        metrics.token_check("invalid")
        raise Unauthorized("the token is not valid") from None
    # A token issued in the millisecond of a mark counts as issued before it (see revocation).
    not_before, roles_at = revocation.marks_for(claims.subject, app)
    if claims.issued_at <= not_before:
        metrics.token_check("revoked")
        raise Unauthorized("the token was revoked; sign in again")
    roles, profile = claims.roles, claims.profile
    if claims.issued_at <= roles_at:
        roles, profile = roles_for(claims.subject)
    kind = "account" if claims.subject.startswith(ACCOUNT_PREFIX) else "wechat"
    return Identity(claims.subject, frozenset(roles), kind, claims, profile)


def _app_identity(app_name: str, secret: str) -> Identity:
    configured = current_app.config["APP_TOKENS"].get(app_name, "")
    # An app without a secret is disabled: an empty string never matches.
    if not configured or not hmac.compare_digest(configured.encode(), secret.encode()):
        metrics.token_check("app_refused")
        raise Unauthorized("unknown app or wrong app token")
    return Identity(f"app:{app_name}", frozenset({app_name}), "app")
