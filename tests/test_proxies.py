"""TRUSTED_PROXIES: X-Forwarded-For names the client only through the trusted hops. Fewer
values than hops (a client talking to the first proxy directly, a proxy that does not add
one) leave the peer's address and never fail the request."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy as sa
from flask import Flask

from berater.db import db
from berater.models import AuditLog
from tests import factories
from tests.helpers import bearer, token_for

pytestmark = pytest.mark.backends

PEER = "127.0.0.1"  # the test client's REMOTE_ADDR: the proxy next to the app
CLIENT, FIRST_PROXY = "203.0.113.7", "198.51.100.1"


@pytest.mark.parametrize(
    ("hops", "forwarded_for", "client_address"),
    [
        (1, CLIENT, CLIENT),
        (1, f"{FIRST_PROXY}, {CLIENT}", CLIENT),  # the nearest value: what our proxy saw
        (2, CLIENT, PEER),  # one value for two hops: not trusted, the peer stays
        (2, f"{CLIENT}, {FIRST_PROXY}", CLIENT),
    ],
)
def test_x_forwarded_for_with_one_or_two_values(
    make_app: Callable[..., Flask], hops: int, forwarded_for: str, client_address: str
) -> None:
    app = make_app(TRUSTED_PROXIES=hops)
    client = app.test_client()
    forwarded = {"X-Forwarded-For": forwarded_for}
    assert client.get("/api/ping", headers=forwarded).status_code == 200
    assert client.get("/signin", headers=forwarded).status_code == 302
    # A request that records the client's address: an admin's revocation, in the audit trail.
    with app.app_context():
        factories.privilege("o_admin", "admin")
        factories.privilege("o_helper", "face")
        db.session.commit()
    token = token_for(client, "o_admin")
    answer = client.post(
        "/api/admin/roles/face/revoke",
        json={"subject": "o_helper"},
        headers={**forwarded, **bearer(token)},
    )
    assert answer.status_code == 200, answer.get_json()
    # And one that counts sends per address: an SMS code.
    code = client.post(
        "/api/code", json={"phone": "13812345678"}, headers={**forwarded, **bearer(token)}
    )
    assert code.status_code == 200, code.get_json()
    with app.app_context():
        logged = db.session.scalars(sa.select(AuditLog.ip)).all()
    assert logged == [client_address]
