"""Operator commands: each does its job, and bad input exits non-zero with a clear message."""

from __future__ import annotations

import sqlalchemy as sa
from cryptography.fernet import Fernet

from berater.db import db
from berater.models import AuthUser, Privilege

PASSWORD = "correct horse battery"


def sign_in(client, username: str, password: str):
    return client.post("/api/token", json={"username": username, "password": password})


def test_db_upgrade_creates_the_schema_on_a_new_database(make_app, tmp_path):
    app = make_app(DATABASE_URL=f"sqlite:///{tmp_path / 'fresh.sqlite3'}")
    result = app.test_cli_runner().invoke(args=["db", "upgrade"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        tables = set(sa.inspect(db.engine).get_table_names())
    assert {
        "source_student",
        "student",
        "candidate",
        "privilege",
        "auth_user",
        "nova_reg",
    } <= tables


def test_user_create_then_sign_in(app, runner):
    result = runner.invoke(args=["user", "create", "Dora"], input=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert "created dora" in result.output
    assert sign_in(app.test_client(), "dora", PASSWORD).status_code == 200
    with app.app_context():
        stored = db.session.get(AuthUser, "dora").password_hash
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored


def test_user_create_refuses_weak_passwords_and_taken_names(runner):
    for weak in ("short", "password123", "dora-is-great"):
        result = runner.invoke(args=["user", "create", "dora", "--password", weak])
        assert result.exit_code != 0
        assert "password" in result.output
    assert runner.invoke(args=["user", "create", "dora", "--password", PASSWORD]).exit_code == 0
    taken = runner.invoke(args=["user", "create", "DORA", "--password", PASSWORD])
    assert taken.exit_code != 0
    assert "taken" in taken.output


def test_user_create_refuses_a_bad_username(runner):
    result = runner.invoke(args=["user", "create", "a b", "--password", PASSWORD])
    assert result.exit_code != 0
    assert "username" in result.output


def test_password_from_stdin(app, runner):
    result = runner.invoke(
        args=["user", "create", "erin", "--password", "-"], input=PASSWORD + "\n"
    )
    assert result.exit_code == 0, result.output
    assert sign_in(app.test_client(), "erin", PASSWORD).status_code == 200


def test_reset_password_signs_the_account_out(app, runner):
    client = app.test_client()
    runner.invoke(args=["user", "create", "fay", "--password", PASSWORD])
    token = sign_in(client, "fay", PASSWORD).get_json()["data"]["token"]
    result = runner.invoke(args=["user", "reset-password", "fay", "--password", "another good one"])
    assert result.exit_code == 0, result.output
    assert client.get("/api/token", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert sign_in(client, "fay", PASSWORD).status_code == 401
    assert sign_in(client, "fay", "another good one").status_code == 200


def test_disable_stops_sign_in_and_enable_restores_it(app, runner):
    client = app.test_client()
    runner.invoke(args=["user", "create", "gus", "--password", PASSWORD])
    assert runner.invoke(args=["user", "disable", "gus"]).exit_code == 0
    assert sign_in(client, "gus", PASSWORD).status_code == 401
    listed = runner.invoke(args=["user", "list"])
    assert "gus\tdisabled" in listed.output
    assert runner.invoke(args=["user", "disable", "gus", "--enable"]).exit_code == 0
    assert sign_in(client, "gus", PASSWORD).status_code == 200


def test_commands_on_an_unknown_user_fail(runner):
    for args in (
        ["user", "disable", "nobody"],
        ["user", "reset-password", "nobody", "--password", PASSWORD],
    ):
        result = runner.invoke(args=args)
        assert result.exit_code != 0
        assert "no such account" in result.output


def test_role_grant_and_revoke(app, runner):
    assert runner.invoke(args=["role", "grant", "o_staff", "admin"]).exit_code == 0
    again = runner.invoke(args=["role", "grant", "o_staff", "admin"])
    assert "already" in again.output
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Privilege)) == 1
    assert runner.invoke(args=["role", "revoke", "o_staff", "admin"]).exit_code == 0
    missing = runner.invoke(args=["role", "revoke", "o_staff", "admin"])
    assert missing.exit_code != 0


def test_a_role_is_granted_only_to_an_account_that_exists(app, runner):
    refused = runner.invoke(args=["role", "grant", "user:ghost", "admin"])
    assert refused.exit_code != 0
    assert "no such account" in refused.output
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Privilege)) == 0
    created = runner.invoke(args=["user", "create", "ghost", "--password", PASSWORD])
    assert created.output.strip() == "created ghost"
    assert sign_in(app.test_client(), "ghost", PASSWORD).get_json()["data"]["roles"] == []
    assert runner.invoke(args=["role", "grant", "user:ghost", "admin"]).exit_code == 0
    assert sign_in(app.test_client(), "ghost", PASSWORD).get_json()["data"]["roles"] == ["admin"]
    # The name exactly as stored (MariaDB would match "Ghost" to "ghost").
    assert runner.invoke(args=["role", "grant", "user:Ghost", "face"]).exit_code != 0
    # Openids cannot be checked (WeChat users appear at sign-in) and are still granted.
    assert runner.invoke(args=["role", "grant", "o_not_seen_yet", "face"]).exit_code == 0


def test_creating_an_account_names_the_roles_granted_to_its_name_earlier(app, runner):
    with app.app_context():
        db.session.add(Privilege(openid="user:ghost", role="admin"))  # granted before the check
        db.session.commit()
    created = runner.invoke(args=["user", "create", "ghost", "--password", PASSWORD])
    assert created.exit_code == 0, created.output
    assert created.output.strip() == "created ghost, holding admin"


def test_role_commands_refuse_unknown_roles(runner):
    result = runner.invoke(args=["role", "grant", "o_staff", "root"])
    assert result.exit_code != 0
    assert "unknown role" in result.output


def test_token_mint_prints_a_working_token(app, runner):
    runner.invoke(args=["role", "grant", "o_ops", "nova_admin"])
    result = runner.invoke(args=["token", "mint", "o_ops"])
    assert result.exit_code == 0, result.output
    token = result.output.strip()
    check = app.test_client().get("/api/token", headers={"Authorization": f"Bearer {token}"})
    assert check.get_json()["data"]["roles"] == ["nova_admin"]
    assert runner.invoke(args=["token", "mint", "o bad"]).exit_code != 0


def test_keys_new_prints_a_fernet_key(runner):
    first = runner.invoke(args=["keys", "new"]).output.strip()
    second = runner.invoke(args=["keys", "new"]).output.strip()
    assert first != second
    Fernet(first.encode())
