"""SMS code endpoints: send a code, verify it; and the development page of console codes."""

from __future__ import annotations

import re
import time

from flask import Blueprint, Response, current_app, render_template, request
from spectree import Response as Resp

from berater.ext.sms import CONSOLE_KEEP
from berater.extensions import sms, spec
from berater.http import BEARER, Envelope, errors, json_body, no_store, ok
from berater.identifiers import mask_phone
from berater.identity.auth import token_required, wechat_openid
from berater.sms import bp
from berater.sms import services as codes
from berater.sms.schemas import (
    CodeErrorOut,
    CodeRequest,
    CodeSentOut,
    PhoneVerifiedOut,
    VerifyRequest,
)

ERRORS = errors(400, 401, 403, 415, 429, 502, 503, model=CodeErrorOut)
# GET /api/code/<code> carries the code in its path.
LEGACY_PATH = re.compile(r"^/api/code/(?!verify$)[^/]+/?$")
MASKED_PATH = "/api/code/******"

# Development and testing only (ENABLE_TEST_TOKEN): the console backend's recent codes.
dev_bp = Blueprint("sms_dev", __name__, url_prefix="/dev")


def _openid() -> str:
    """Codes belong to WeChat users: accounts and partner apps have no phone to bind."""
    return wechat_openid("verify a phone")


def _verified(phone: str) -> dict[str, object]:
    return {
        "phone": mask_phone(phone),
        "verified": True,
        "expires_in": int(current_app.config["SMS_VERIFIED_TTL"]),
    }


@bp.post("/code")
@token_required()
@spec.validate(
    json=CodeRequest,
    resp=Resp(HTTP_200=Envelope[CodeSentOut], **ERRORS),
    tags=["code"],
    security=BEARER,
)
def send_code() -> Response:
    """Text a 6-digit code to one mainland mobile number."""
    body = json_body(CodeRequest)
    # remote_addr is the client: ProxyFix rewrites it only for TRUSTED_PROXIES hops.
    return ok(codes.send_code(_openid(), body.phone, request.remote_addr))


@bp.post("/code/verify")
@token_required()
@spec.validate(
    json=VerifyRequest,
    resp=Resp(HTTP_200=Envelope[PhoneVerifiedOut], **ERRORS),
    tags=["code"],
    security=BEARER,
)
def verify_code() -> Response:
    """Check the code; the phone stays verified for binding for 30 minutes."""
    body = json_body(VerifyRequest)
    return ok(_verified(codes.verify_code(_openid(), body.code)))


@bp.get("/code/<code>")
@token_required()
@spec.validate(
    resp=Resp(HTTP_200=Envelope[PhoneVerifiedOut], **ERRORS), tags=["code"], security=BEARER
)
def verify_code_legacy(code: str) -> Response:
    """The original client's check (code in the path); prefer POST /api/code/verify."""
    return ok(_verified(codes.verify_code(_openid(), code)))


@dev_bp.get("/sms")
@no_store
def console_codes() -> Response:
    """The console backend's last codes (development only; never in production)."""
    entries = sms.last_codes()
    if request.args.get("format") == "json":
        return ok({"backend": current_app.config["SMS_BACKEND"], "messages": entries})
    shown = [
        {
            "phone": entry.get("phone", ""),
            "code": entry.get("code", ""),
            "sent": time.strftime("%H:%M:%S", time.localtime(entry.get("sent_at", 0))),
        }
        for entry in entries
    ]
    page = render_template(
        "sms/console.html",
        entries=shown,
        backend=current_app.config["SMS_BACKEND"],
        keep=CONSOLE_KEEP,
    )
    return Response(page, 200, mimetype="text/html")
