"""The admin JSON API: role holders, revocation, the audit trail, password accounts."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from berater.db import db
from berater.errors import NotFound
from berater.identity import subjects
from berater.models import AuditLog, AuthUser
from tests import factories
from tests.helpers import bearer, token_for

pytestmark = pytest.mark.backends

ADMIN = "o_admin"
PASSWORD = "correct horse battery"


def sign_in(client, username: str, password: str):
    return client.post("/api/token", json={"username": username, "password": password})


@pytest.fixture
def admin(client, ctx) -> dict[str, str]:
    """Headers of an admin (a WeChat user holding `admin`)."""
    factories.privilege(ADMIN, "admin")
    db.session.commit()
    return bearer(token_for(client, ADMIN))


def audit_actions(ctx) -> list[tuple[str, str, str, str | None]]:
    db.session.expire_all()
    rows = db.session.execute(
        sa.select(AuditLog.actor, AuditLog.action, AuditLog.target, AuditLog.role).order_by(
            AuditLog.id
        )
    ).all()
    return [tuple(row) for row in rows]


ENDPOINTS = [
    ("get", "/api/admin/link/face", None),
    ("get", "/api/admin/roles/face", None),
    ("post", "/api/admin/roles/face/revoke", {"subject": "o_x"}),
    ("get", "/api/admin/audit", None),
    ("get", "/api/admin/audit/export.csv", None),
    ("get", "/api/admin/invitations", None),
    ("post", f"/api/admin/invitations/{'0' * 64}/cancel", None),
    ("get", "/api/admin/password-rules", None),
    ("get", "/api/admin/users", None),
    ("post", "/api/admin/users", {"username": "dora", "password": PASSWORD}),
    ("put", "/api/admin/users/dora/password", {"password": PASSWORD}),
    ("post", "/api/admin/users/dora/disable", None),
    ("post", "/api/admin/users/dora/enable", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
def test_every_admin_endpoint_refuses_non_admins(client, ctx, method, path, body):
    factories.privilege("o_helper", "nova_admin")
    factories.privilege("o_helper", "face")
    db.session.commit()
    for headers in (
        bearer(token_for(client, "o_helper")),
        bearer(token_for(client, "o_nobody")),
        {"Authorization": "Bearer face dev-face-app-token"},
    ):
        response = getattr(client, method)(path, json=body, headers=headers)
        assert response.status_code == 403, (headers, response.get_json())
    assert getattr(client, method)(path, json=body).status_code == 401
    assert audit_actions(ctx) == []


# -- roles -------------------------------------------------------------------------------------


def test_an_admin_lists_the_holders_of_a_role(client, admin, ctx):
    factories.privilege("o_one", "face")
    factories.privilege("user:photo-desk", "face")
    factories.privilege("o_two", "nova_admin")
    db.session.commit()

    response = client.get("/api/admin/roles/face", headers=admin)

    assert response.status_code == 200
    data = response.get_json()["data"]
    assert data["role"] == "face"
    assert sorted(h["subject"] for h in data["holders"]) == ["o_one", "user:photo-desk"]
    assert all(h["granted_by"] == "test" and h["granted_at"] for h in data["holders"])
    admins = client.get("/api/admin/roles/admin", headers=admin).get_json()["data"]
    assert [h["subject"] for h in admins["holders"]] == [ADMIN]


@pytest.mark.parametrize("role", ["root", "student", "Face"])
def test_an_unknown_role_has_no_holders_list(client, admin, role):
    response = client.get(f"/api/admin/roles/{role}", headers=admin)
    assert response.status_code == 400
    assert "unknown role" in response.get_json()["error"]


def test_revoking_a_role_removes_it_from_the_old_token_and_is_audited(client, admin, ctx):
    factories.privilege("o_holder", "face")
    factories.privilege("o_holder", "nova_admin")
    db.session.commit()
    old = bearer(token_for(client, "o_holder"))
    assert client.get("/api/token", headers=old).get_json()["data"]["roles"] == [
        "face",
        "nova_admin",
    ]

    response = client.post(
        "/api/admin/roles/face/revoke", json={"subject": "o_holder"}, headers=admin
    )

    assert response.status_code == 200, response.get_json()
    assert response.get_json()["data"] == {"role": "face", "subject": "o_holder", "revoked": True}
    assert client.get("/api/token", headers=old).get_json()["data"]["roles"] == ["nova_admin"]
    rows = db.session.scalars(sa.select(AuditLog)).all()
    assert [(r.actor, r.action, r.target, r.role, r.ip) for r in rows] == [
        (ADMIN, "revoke", "o_holder", "face", "127.0.0.1")
    ]
    assert rows[0].at is not None
    again = client.post("/api/admin/roles/face/revoke", json={"subject": "o_holder"}, headers=admin)
    assert again.status_code == 404
    assert len(audit_actions(ctx)) == 1


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"subject": ""},
        {"subject": "a b"},
        {"subject": "x" * 81},
        {"subject": 5},
        {"subject": "o_holder", "role": "admin"},
        {"openid": "o_holder"},
    ],
    ids=["none", "empty", "space", "long", "int", "extra", "wrong-name"],
)
def test_a_bad_revoke_body_is_refused(client, admin, ctx, body):
    factories.privilege("o_holder", "face")
    db.session.commit()

    response = client.post("/api/admin/roles/face/revoke", json=body, headers=admin)

    assert response.status_code == 400
    assert response.get_json()["data"]["fields"]
    assert audit_actions(ctx) == []


def test_revoking_an_unknown_role_is_a_bad_request(client, admin):
    response = client.post("/api/admin/roles/root/revoke", json={"subject": "o_x"}, headers=admin)
    assert response.status_code == 400


# -- the audit trail ---------------------------------------------------------------------------


def test_the_audit_list_is_newest_first_and_paged(client, admin, runner, ctx):
    for i in range(5):
        assert runner.invoke(args=["role", "grant", f"o_member_{i}", "face"]).exit_code == 0

    first = client.get("/api/admin/audit?per_page=2", headers=admin).get_json()["data"]
    second = client.get("/api/admin/audit?page=2&per_page=2", headers=admin).get_json()["data"]
    last = client.get("/api/admin/audit?page=3&per_page=2", headers=admin).get_json()["data"]
    beyond = client.get("/api/admin/audit?page=9&per_page=2", headers=admin).get_json()["data"]

    assert first["total"] == 5
    targets = [e["target"] for page in (first, second, last) for e in page["items"]]
    assert targets == [f"o_member_{i}" for i in (4, 3, 2, 1, 0)]
    assert [len(p["items"]) for p in (first, second, last, beyond)] == [2, 2, 1, 0]
    entry = first["items"][0]
    assert entry["actor"] == "cli"
    assert entry["action"] == "grant"
    assert entry["role"] == "face"
    assert entry["ip"] is None
    assert entry["at"].endswith("Z")


@pytest.mark.parametrize(
    "query",
    ["per_page=101", "per_page=0", "page=0", "page=-1", "per_page=x", "page=1.5", "sort=at"],
)
def test_bad_audit_paging_is_refused(client, admin, query):
    response = client.get(f"/api/admin/audit?{query}", headers=admin)
    assert response.status_code == 400
    assert response.get_json()["data"]["fields"]


def test_the_cli_writes_audit_rows(runner, ctx):
    commands = [
        ["role", "grant", "o_staff", "admin"],
        ["role", "grant", "o_staff", "admin"],  # already held: no change, no row
        ["role", "revoke", "o_staff", "admin"],
        ["user", "create", "Dora", "--password", PASSWORD],
        ["user", "reset-password", "DORA", "--password", "another good one"],
        ["user", "disable", "dora"],
        ["user", "disable", "dora", "--enable"],
    ]
    for args in commands:
        result = runner.invoke(args=args)
        assert result.exit_code == 0, result.output
    assert runner.invoke(args=["role", "revoke", "o_staff", "admin"]).exit_code != 0

    assert audit_actions(ctx) == [
        ("cli", "grant", "o_staff", "admin"),
        ("cli", "revoke", "o_staff", "admin"),
        ("cli", "user_create", "dora", None),
        ("cli", "user_reset", "dora", None),
        ("cli", "user_disable", "dora", None),
        ("cli", "user_enable", "dora", None),
    ]


# -- password accounts -------------------------------------------------------------------------


def test_an_admin_creates_an_account_that_can_sign_in(client, admin, ctx):
    response = client.post(
        "/api/admin/users", json={"username": "Dora", "password": PASSWORD}, headers=admin
    )

    assert response.status_code == 200, response.get_json()
    data = response.get_json()["data"]
    assert data["username"] == "dora"
    assert data["disabled"] is False
    assert data["roles"] == []
    assert sign_in(client, "dora", PASSWORD).status_code == 200
    stored = db.session.get(AuthUser, "dora").password_hash
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored
    assert audit_actions(ctx) == [(ADMIN, "user_create", "dora", None)]
    assert PASSWORD not in str(client.get("/api/admin/audit", headers=admin).get_json())


def test_a_new_account_is_answered_with_the_roles_it_holds(client, admin, ctx):
    factories.privilege("user:ghost", "admin")  # granted to the name before it existed
    db.session.commit()
    response = client.post(
        "/api/admin/users", json={"username": "ghost", "password": PASSWORD}, headers=admin
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["data"]["roles"] == ["admin"]
    listed = client.get("/api/admin/users", headers=admin).get_json()["data"]["users"]
    assert [u["roles"] for u in listed if u["username"] == "ghost"] == [["admin"]]


def test_roles_are_granted_only_to_accounts_that_exist(ctx):
    """Every grant path (the CLI, an accepted invitation) goes through grant_role."""
    with pytest.raises(NotFound):
        subjects.grant_role("user:ghost", "face", granted_by=ADMIN)
    factories.auth_user("ghost", PASSWORD)
    assert subjects.grant_role("user:ghost", "face", granted_by=ADMIN) is True
    assert subjects.grant_role("o_first_time", "face", granted_by=ADMIN) is True


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("short", "8 to 128"),
        ("", "8 to 128"),
        ("x" * 129, "8 to 128"),
        ("password123", "too easy"),
        ("PASSWORD123", "too easy"),
        ("dora-is-great", "too easy"),  # holds the username
    ],
)
def test_a_weak_password_is_refused_with_the_rule(client, admin, ctx, password, message):
    response = client.post(
        "/api/admin/users", json={"username": "dora", "password": password}, headers=admin
    )

    assert response.status_code == 400
    assert message in response.get_json()["error"]
    assert db.session.get(AuthUser, "dora") is None
    assert audit_actions(ctx) == []


@pytest.mark.parametrize(
    "body",
    [
        {"username": "dora"},
        {"password": PASSWORD},
        {"username": "dora", "password": 12345678},
        {"username": ["dora"], "password": PASSWORD},
        {"username": "dora", "password": PASSWORD, "disabled": False},
    ],
    ids=["no-password", "no-username", "int-password", "list-username", "extra"],
)
def test_a_bad_account_body_is_refused(client, admin, body):
    response = client.post("/api/admin/users", json=body, headers=admin)
    assert response.status_code == 400
    assert response.get_json()["data"]["fields"]


@pytest.mark.parametrize("username", ["a b", "ab", "-dora", "x" * 65, "dörte"])
def test_a_bad_username_is_refused(client, admin, username):
    response = client.post(
        "/api/admin/users", json={"username": username, "password": PASSWORD}, headers=admin
    )
    assert response.status_code == 400
    assert "username" in response.get_json()["error"]


def test_a_taken_username_is_a_conflict(client, admin, ctx):
    first = client.post(
        "/api/admin/users", json={"username": "dora", "password": PASSWORD}, headers=admin
    )
    assert first.status_code == 200

    again = client.post(
        "/api/admin/users", json={"username": "DORA", "password": "another good one"}, headers=admin
    )

    assert again.status_code == 409
    assert sign_in(client, "dora", PASSWORD).status_code == 200
    assert len(audit_actions(ctx)) == 1


def test_a_password_reset_signs_the_account_out(client, admin, ctx):
    factories.auth_user("erin", PASSWORD)
    db.session.commit()
    old = bearer(sign_in(client, "erin", PASSWORD).get_json()["data"]["token"])
    assert client.get("/api/token", headers=old).status_code == 200

    response = client.put(
        "/api/admin/users/Erin/password", json={"password": "another good one"}, headers=admin
    )

    assert response.status_code == 200, response.get_json()
    assert response.get_json()["data"]["username"] == "erin"
    assert client.get("/api/token", headers=old).status_code == 401
    assert sign_in(client, "erin", PASSWORD).status_code == 401
    assert sign_in(client, "erin", "another good one").status_code == 200
    weak = client.put("/api/admin/users/erin/password", json={"password": "123"}, headers=admin)
    assert weak.status_code == 400
    unknown = client.put(
        "/api/admin/users/nobody/password", json={"password": PASSWORD}, headers=admin
    )
    assert unknown.status_code == 404
    assert audit_actions(ctx) == [(ADMIN, "user_reset", "erin", None)]


def test_disable_signs_out_and_enable_restores_sign_in(client, admin, ctx):
    factories.auth_user("gus", PASSWORD)
    db.session.commit()
    old = bearer(sign_in(client, "gus", PASSWORD).get_json()["data"]["token"])

    disabled = client.post("/api/admin/users/gus/disable", headers=admin)

    assert disabled.status_code == 200
    assert disabled.get_json()["data"]["disabled"] is True
    assert client.get("/api/token", headers=old).status_code == 401
    assert sign_in(client, "gus", PASSWORD).status_code == 401

    enabled = client.post("/api/admin/users/gus/enable", headers=admin)

    assert enabled.get_json()["data"]["disabled"] is False
    assert sign_in(client, "gus", PASSWORD).status_code == 200
    assert client.post("/api/admin/users/nobody/disable", headers=admin).status_code == 404
    assert audit_actions(ctx) == [
        (ADMIN, "user_disable", "gus", None),
        (ADMIN, "user_enable", "gus", None),
    ]


def test_the_account_list_shows_state_and_roles_but_no_hashes(client, admin, ctx):
    factories.auth_user("alice", PASSWORD)
    factories.auth_user("bob", PASSWORD, disabled=True)
    factories.privilege("user:alice", "admin")
    factories.privilege("alice", "face")  # an openid that happens to be "alice"
    db.session.commit()

    response = client.get("/api/admin/users", headers=admin)

    assert response.status_code == 200
    users = response.get_json()["data"]["users"]
    assert [(u["username"], u["disabled"], u["roles"]) for u in users] == [
        ("alice", False, ["admin"]),
        ("bob", True, []),
    ]
    assert "argon2" not in response.get_data(as_text=True)


def test_a_password_account_admin_may_use_the_api(client, ctx):
    factories.auth_user("alice", PASSWORD)
    factories.privilege("user:alice", "admin")
    db.session.commit()
    headers = bearer(sign_in(client, "alice", PASSWORD).get_json()["data"]["token"])

    created = client.post(
        "/api/admin/users", json={"username": "carol", "password": PASSWORD}, headers=headers
    )

    assert created.status_code == 200
    assert audit_actions(ctx) == [("user:alice", "user_create", "carol", None)]
