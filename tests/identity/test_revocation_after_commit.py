"""Revocation marks follow the commit of the change they announce (berater.identity.revocation).

A change that rolls back leaves no mark; a token refreshed, signed in or minted while a
change is on its way to the database cannot keep what the change takes away.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from berater.db import began_at, db, transaction
from berater.errors import StoreUnavailable
from berater.extensions import crypto
from berater.identity import accounts, revocation, services, subjects
from berater.models import Privilege
from tests import factories
from tests.helpers import bearer, commit_fails, in_thread, token_for

pytestmark = pytest.mark.backends

PASSWORD = "correct horse battery"
MARKS = "berater:revoke:marks"


@pytest.fixture
def staff(app: Flask) -> str:
    """o_staff holds `admin` (committed); an account `alice` exists."""
    with app.app_context():
        factories.privilege("o_staff", "admin")
        factories.auth_user("alice", PASSWORD)
        db.session.commit()
    return "o_staff"


def roles_of(client: FlaskClient, token: str) -> list[str]:
    response = client.get("/api/token", headers=bearer(token))
    assert response.status_code == 200, response.get_json()
    return response.get_json()["data"]["roles"]


# --- a change that rolls back leaves no mark ---------------------------------------------------

CHANGES: dict[str, tuple[str, Callable[[], object]]] = {
    "grant": ("o_new", lambda: subjects.grant_role("o_new", "nova_admin")),
    "revoke": ("o_staff", lambda: subjects.revoke_role("o_staff", "admin")),
    "disable": ("user:alice", lambda: accounts.set_disabled("alice", True)),
    "reset password": ("user:alice", lambda: accounts.reset_password("alice", "a new pass phrase")),
}


@pytest.mark.parametrize("change", CHANGES, ids=list(CHANGES))
def test_a_change_that_rolls_back_leaves_no_mark(app, staff, store_client, change):
    subject, make = CHANGES[change]
    with app.app_context():
        with pytest.raises(RuntimeError), transaction():
            make()
            raise RuntimeError("the transaction fails after the change")
        assert revocation.marks_for(subject) == (0.0, 0.0)  # this worker's copy
    assert store_client.hget(MARKS, subject) is None


@pytest.mark.parametrize("change", CHANGES, ids=list(CHANGES))
def test_a_change_that_commits_leaves_its_mark_after_the_commit(app, staff, store_client, change):
    subject, make = CHANGES[change]
    with app.app_context():
        with transaction():
            make()
            assert store_client.hget(MARKS, subject) is None
        assert store_client.hget(MARKS, subject) is not None


def test_a_revocation_whose_commit_fails_over_the_api_leaves_the_role_and_no_mark(
    app, client, staff, store_client
):
    with app.app_context():
        factories.privilege("o_admin", "admin")
        db.session.commit()
    admin = bearer(token_for(client, "o_admin"))
    token = token_for(client, "o_staff")
    with commit_fails():
        failed = client.post(
            "/api/admin/roles/admin/revoke", json={"subject": "o_staff"}, headers=admin
        )
    assert failed.status_code == 500
    assert store_client.hget(MARKS, "o_staff") is None
    assert roles_of(client, token) == ["admin"]
    done = client.post("/api/admin/roles/admin/revoke", json={"subject": "o_staff"}, headers=admin)
    assert done.status_code == 200
    assert roles_of(client, token) == []


# --- tokens made while a change is on its way ----------------------------------------------------


def test_a_token_refreshed_before_the_revocation_commits_loses_the_role(app, client, staff):
    token = token_for(client, "o_staff")
    with app.app_context(), transaction():
        subjects.revoke_role("o_staff", "admin")
        # Another worker thread refreshes the token while the revocation is uncommitted.
        refreshed = in_thread(lambda: client.put("/api/token", headers=bearer(token)))
        assert refreshed.status_code == 200
        assert refreshed.get_json()["data"]["roles"] == ["admin"]  # not committed yet
    new_token = refreshed.get_json()["data"]["token"]
    assert roles_of(client, new_token) == []
    assert roles_of(client, token) == []
    again = client.put("/api/token", headers=bearer(new_token)).get_json()["data"]
    assert again["roles"] == []


def test_a_sign_in_before_the_account_is_disabled_is_refused_after_the_commit(app, client, staff):
    with app.app_context(), transaction():
        accounts.set_disabled("alice", True)
        signed_in = in_thread(
            lambda: client.post("/api/token", json={"username": "alice", "password": PASSWORD})
        )
        assert signed_in.status_code == 200  # the account is not disabled until the commit
    token = signed_in.get_json()["data"]["token"]
    refused = client.get("/api/token", headers=bearer(token))
    assert refused.status_code == 401
    assert "revoked" in refused.get_json()["error"]


def test_a_token_minted_from_a_snapshot_older_than_the_revocation_loses_the_role(
    app, client, staff
):
    """A request that read the database before the revocation committed mints its token after
    the mark. On MariaDB (REPEATABLE READ) that request still sees the role; its token is
    issued at the start of its transaction, before the mark, so it is checked again."""
    with app.app_context():
        db.session.scalars(select(Privilege.role).where(Privilege.openid == "o_staff")).all()
        with app.app_context(), transaction():  # the revocation, in a session of its own
            subjects.revoke_role("o_staff", "admin")
        minted = services.issue_token("o_staff")
    assert roles_of(client, minted["token"]) == []


def test_a_token_is_issued_at_the_start_of_the_transaction_that_read_its_roles(app, staff):
    with app.app_context():
        db.session.scalars(select(Privilege.role)).all()
        started = began_at()
        assert started is not None
        time.sleep(0.02)
        minted = services.issue_token("o_staff")
        claims = crypto.read(minted["token"])
    assert claims.issued_at == round(started, 3)
    assert claims.expires_at - int(claims.issued_at) == minted["expires_in"]


def test_a_token_issued_in_the_millisecond_of_a_mark_counts_as_issued_before_it(app, client, staff):
    """Tokens and marks keep milliseconds: a token minted before a commit and the mark written
    after it can carry the same value, and the token must not win."""
    with app.app_context():
        with transaction():
            subjects.revoke_role("o_staff", "admin")
        _, roles_at = revocation.marks_for("o_staff")
        same_ms, _ = crypto.mint("o_staff", ["admin"], issued_at=roles_at)
        with transaction():
            accounts.set_disabled("alice", True)
        not_before, _ = revocation.marks_for("user:alice")
        signed_out, _ = crypto.mint("user:alice", [], issued_at=not_before)
    assert roles_of(client, same_ms) == []
    assert client.get("/api/token", headers=bearer(signed_out)).status_code == 401


def test_a_mark_that_cannot_be_written_fails_the_call_but_keeps_the_change(app, make_app, staff):
    """The store is down after the commit: the revocation is saved, the caller hears 503."""
    no_store = make_app(REDIS_URL="redis://127.0.0.1:1/0", REDIS_SOCKET_TIMEOUT=0.2)
    with no_store.app_context():
        with pytest.raises(StoreUnavailable), transaction():
            subjects.revoke_role("o_staff", "admin")
        held = db.session.scalars(select(Privilege.role).where(Privilege.openid == "o_staff"))
        assert list(held) == []
