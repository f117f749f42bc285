"""`POST /api/test/token/<openid>`: registered under development and testing settings only."""

from __future__ import annotations

import re

from flask import Response
from spectree import Response as Resp

from berater.errors import BadRequest
from berater.extensions import spec
from berater.http import Envelope, no_store, ok
from berater.identity import services, testing_bp
from berater.identity.schemas import TokenOut

OPENID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@testing_bp.post("/token/<openid>")
@no_store
@spec.validate(resp=Resp(HTTP_200=Envelope[TokenOut]), tags=["testing"])
def test_token(openid: str) -> Response:
    """A token for any openid, with the roles that openid holds."""
    if not OPENID.match(openid):
        raise BadRequest("an openid is 1-64 letters, digits, '_' or '-'")
    return ok(services.issue_token(openid))
