"""A database restart or outage: a clear 503, nothing half-written, recovery without restart."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from berater.db import db, transaction
from berater.models import Candidate
from tests import factories

pytestmark = [pytest.mark.backends, pytest.mark.mariadb]

# A pooled connection to the old server fails its pre-ping and is replaced at once.
AFTER_RESTART = 2.0


def test_the_next_request_succeeds_after_a_database_restart(app, client, backend_servers):
    # Set up in a context of its own: a request must not share the test's session.
    with app.app_context():
        factories.candidate("o_before")
        db.session.commit()
    assert client.post("/api/test/token/o_before").status_code == 200
    backend_servers["mariadb"].restart()
    started = time.monotonic()
    response = client.post("/api/test/token/o_before")
    took = time.monotonic() - started
    assert response.status_code == 200
    assert took < AFTER_RESTART, f"the first request after the restart took {took:.2f}s"
    assert response.get_json()["data"]["candidate"] is True


def test_a_database_outage_is_a_quick_503_and_recovers(client, backend_servers):
    server = backend_servers["mariadb"]
    server.stop()
    try:
        started = time.monotonic()
        response = client.post("/api/test/token/o_during")
        assert response.status_code == 503
        assert response.get_json()["error"] == "the database is unavailable, try again shortly"
        assert time.monotonic() - started < 5
    finally:
        server.start()
    started = time.monotonic()
    assert client.post("/api/test/token/o_during").status_code == 200
    assert time.monotonic() - started < AFTER_RESTART


def test_a_failed_transaction_leaves_nothing_behind(ctx):
    with pytest.raises(RuntimeError), transaction():
        factories.candidate("o_half")
        raise RuntimeError("failure after the write")
    assert db.session.get(Candidate, "o_half") is None
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Candidate)) == 0
