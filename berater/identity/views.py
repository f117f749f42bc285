"""Token endpoints: HTTP only; the work is in services."""

from __future__ import annotations

from flask import Response
from spectree import Response as Resp

from berater.db import transaction
from berater.extensions import spec
from berater.http import APP, BEARER, Envelope, errors, json_body, no_store, ok
from berater.identity import bp, services
from berater.identity.auth import current_identity, get_identity, token_required
from berater.identity.schemas import IdentityOut, TokenOut, TokenRequest

ERRORS = errors(400, 401, 403, 415, 429, 502, 503)


@bp.post("/token")
@no_store
@spec.validate(json=TokenRequest, resp=Resp(HTTP_200=Envelope[TokenOut], **ERRORS), tags=["token"])
def create_token() -> Response:
    """Sign in with a WeChat OAuth code, or a username and password."""
    body = json_body(TokenRequest)
    with transaction():  # a password rehash on sign-in is written here
        data = services.sign_in(body.code, body.username, body.password)
    return ok(data)


@bp.put("/token")
@token_required()
@spec.validate(resp=Resp(HTTP_200=Envelope[TokenOut], **ERRORS), tags=["token"], security=BEARER)
def refresh_token() -> Response:
    """A new token with the roles the bearer holds now."""
    return ok(services.refresh(current_identity))


@bp.get("/token")
@token_required()
@spec.validate(
    resp=Resp(HTTP_200=Envelope[IdentityOut], **ERRORS),
    tags=["token"],
    security=BEARER + APP,
)
def check_token() -> Response:
    """Who the bearer is."""
    return ok(services.describe(get_identity()))


@bp.delete("/token")
@token_required()
@spec.validate(resp=Resp(HTTP_200=Envelope[None], **ERRORS), tags=["token"], security=BEARER)
def delete_token() -> Response:
    """Sign out: every token of the bearer issued until now stops working."""
    services.sign_out(current_identity)
    return ok(None)


@bp.get("/ping")
@spec.validate(resp=Resp(HTTP_200=Envelope[dict[str, bool]]), tags=["health"])
def ping() -> Response:
    """A constant answer, for load balancers and the benchmark's baseline."""
    return ok({"pong": True})
