"""The JS-SDK signature endpoint: HTTP only; the work is in services."""

from __future__ import annotations

from flask import Response
from spectree import Response as Resp

from berater.extensions import spec
from berater.http import APP, BEARER, Envelope, errors, ok, query_args
from berater.identity.auth import token_required
from berater.wechat import bp, services
from berater.wechat.schemas import JssdkOut, JssdkQuery

ERRORS = errors(400, 401, 403, 429, 502, 503)


@bp.get("/jssdk")
@token_required()
@spec.validate(
    query=JssdkQuery,
    resp=Resp(HTTP_200=Envelope[JssdkOut], **ERRORS),
    tags=["wechat"],
    security=BEARER + APP,
)
def jssdk_signature() -> Response:
    """The `wx.config` data for a partner page: appId, timestamp, nonceStr and signature."""
    query = query_args(JssdkQuery)
    return ok(services.sign(query.url))
