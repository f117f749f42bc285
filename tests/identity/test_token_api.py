"""The token API: sign-in by WeChat code or password, refresh, check, sign-out, revocation."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from argon2 import PasswordHasher

from berater.db import db
from berater.extensions import crypto
from berater.identity import accounts, revocation, subjects
from tests import factories
from tests.helpers import bearer, token_for

pytestmark = pytest.mark.backends


@pytest.fixture
def bound_student(ctx):
    source = factories.source_student(stuid="202612345", admission_id="26320102000777")
    factories.student("o_student", source)
    db.session.commit()
    return source


# --- sign-in with a WeChat code -------------------------------------------------------------


def test_a_wechat_code_signs_in_with_the_roles_held(client, wechat, bound_student):
    code = wechat.fake.issue_code("o_student")
    response = client.post("/api/token", json={"code": code})
    assert response.status_code == 200
    data = response.get_json()["data"]
    assert data["student"] is True
    assert data["candidate"] is False
    assert data["roles"] == ["student"]
    check = client.get("/api/token", headers=bearer(data["token"])).get_json()
    assert check["data"]["stuid"] == "202612345"
    assert check["data"]["admission_id"] == "26320102000777"
    assert "o_student" not in str(check)  # the openid never leaves


def test_a_code_works_once(client, wechat):
    code = wechat.fake.issue_code("o_someone")
    assert client.post("/api/token", json={"code": code}).status_code == 200
    again = client.post("/api/token", json={"code": code})
    assert again.status_code == 401
    assert "already used" in again.get_json()["error"]


def test_an_unknown_code_is_refused(client, wechat):
    response = client.post("/api/token", json={"code": "nosuchcode"})
    assert response.status_code == 401
    assert wechat.fake.calls_to("/sns/oauth2/access_token") == 1


@pytest.mark.parametrize(
    "body",
    [
        {"code": 123},
        {"code": ["a"]},
        {"code": ""},
        {"code": "x" * 129},
        {"code": "abc&appid=other"},
        {"code": "abc", "username": "u", "password": "p"},
        {},
        {"username": "alice"},
    ],
    ids=["int", "list", "empty", "oversized", "injection", "both", "none", "half"],
)
def test_a_bad_code_is_refused_before_any_wechat_call(client, wechat, body):
    response = client.post("/api/token", json=body)
    assert response.status_code == 400
    assert response.get_json()["data"]["fields"]
    assert wechat.fake.calls_to("/sns/oauth2/access_token") == 0


@pytest.mark.parametrize(
    ("mode", "errcode", "status"),
    [
        ("errcode", -1, 503),
        ("errcode", 40013, 502),
        ("http500", None, 502),
        ("html", None, 502),
        ("timeout", None, 502),
    ],
)
def test_wechat_failures_are_clear_and_quick(client, wechat, mode, errcode, status):
    wechat.fake.timeout_sleep = 2.5
    wechat.fake.fail("/sns/oauth2/access_token", mode, errcode=errcode)
    code = wechat.fake.issue_code("o_someone")
    started = time.monotonic()
    response = client.post("/api/token", json={"code": code})
    assert response.status_code == status
    assert response.get_json()["code"] == status
    assert time.monotonic() - started < 2.5  # the read timeout in tests is 1.5 s


# --- sign-in with a password ----------------------------------------------------------------


@pytest.fixture
def alice(ctx):
    user = factories.auth_user("alice", "correct horse battery")
    factories.privilege("user:alice", "admin")
    db.session.commit()
    return user


def test_a_password_signs_in_as_the_account(client, alice):
    response = client.post(
        "/api/token", json={"username": "Alice", "password": "correct horse battery"}
    )
    assert response.status_code == 200
    data = response.get_json()["data"]
    assert data["roles"] == ["admin"]
    check = client.get("/api/token", headers=bearer(data["token"])).get_json()["data"]
    assert check["kind"] == "account"
    assert check["username"] == "alice"


def test_a_password_account_and_an_openid_of_the_same_name_do_not_mix(client, alice, ctx):
    factories.privilege("alice", "nova_admin")  # an openid that happens to be "alice"
    db.session.commit()
    response = client.post(
        "/api/token", json={"username": "alice", "password": "correct horse battery"}
    )
    assert response.get_json()["data"]["roles"] == ["admin"]


def test_unknown_user_and_wrong_password_look_the_same(client, alice):
    def attempt(username: str) -> tuple[dict, float]:
        started = time.perf_counter()
        response = client.post(
            "/api/token", json={"username": username, "password": "wrong password!"}
        )
        return response.get_json(), time.perf_counter() - started

    # Interleaved, so that other load on the machine falls on both kinds alike.
    pairs = [(attempt("alice"), attempt(f"nobody{i}")) for i in range(5)]
    wrong, unknown = [w for w, _ in pairs], [u for _, u in pairs]
    assert (
        {w[0]["error"] for w in wrong}
        == {u[0]["error"] for u in unknown}
        == {"wrong username or password"}
    )
    assert {w[0]["code"] for w in wrong + unknown} == {401}
    # Both verify an argon2 hash: their times are of the same order.
    # The fastest of each kind: the time of the work itself, with the least load added.
    ratio = min(t for _, t in wrong) / min(t for _, t in unknown)
    assert 0.33 < ratio < 3


def test_a_disabled_account_cannot_sign_in(client, ctx):
    factories.auth_user("carol", "correct horse battery", disabled=True)
    db.session.commit()
    response = client.post(
        "/api/token", json={"username": "carol", "password": "correct horse battery"}
    )
    assert response.status_code == 401


def test_failed_logins_lock_the_account_not_the_address(client, alice):
    for _ in range(10):
        bad = client.post("/api/token", json={"username": "alice", "password": "wrong password!"})
        assert bad.status_code == 401
    locked = client.post(
        "/api/token", json={"username": "alice", "password": "correct horse battery"}
    )
    assert locked.status_code == 429
    assert int(locked.headers["Retry-After"]) >= 1
    # Another account behind the same address is not affected.
    other = client.post("/api/token", json={"username": "bob", "password": "whatever123"})
    assert other.status_code == 401


def test_the_wait_grows_with_each_failure_past_the_limit(client, alice, store_client):
    for _ in range(10):
        client.post("/api/token", json={"username": "alice", "password": "wrong password!"})
    first = store_client.pttl("berater:login-locked:alice")
    store_client.delete("berater:login-locked:alice")
    client.post("/api/token", json={"username": "alice", "password": "wrong password!"})
    second = store_client.pttl("berater:login-locked:alice")
    assert 0 < first <= 1000 < second <= 2000


def test_a_good_login_clears_the_failure_count(client, alice, store_client):
    for _ in range(3):
        client.post("/api/token", json={"username": "alice", "password": "wrong password!"})
    assert store_client.get("berater:login-failed:alice") == "3"
    client.post("/api/token", json={"username": "alice", "password": "correct horse battery"})
    assert store_client.get("berater:login-failed:alice") is None


def test_parallel_guesses_cannot_get_past_the_login_limit(app, alice, live_server, monkeypatch):
    """50 guesses at once over HTTP: at most LOGIN_MAX_FAILURES have their password checked.
    The first lock is made long here, so that how long the burst takes cannot matter."""
    import requests

    monkeypatch.setattr(accounts, "FIRST_WAIT", 120)
    checked: list[str] = []
    verify = PasswordHasher.verify

    def counting(self: PasswordHasher, hash_: str, password: str) -> bool:
        checked.append(password)
        time.sleep(0.05)  # about what production's Argon2 parameters take (tests use cheap ones)
        return verify(self, hash_, password)

    monkeypatch.setattr(PasswordHasher, "verify", counting)
    barrier = threading.Barrier(50)

    def guess(n: int) -> int:
        barrier.wait()
        body = {"username": "alice", "password": f"wrong guess {n}"}
        return requests.post(f"{live_server}/api/token", json=body, timeout=30).status_code

    with ThreadPoolExecutor(50) as pool:
        statuses = list(pool.map(guess, range(50)))
    limit = app.config["LOGIN_MAX_FAILURES"]
    assert len(checked) <= limit
    assert statuses.count(401) == len(checked)
    assert statuses.count(429) == 50 - len(checked)
    right = {"username": "alice", "password": "correct horse battery"}
    assert requests.post(f"{live_server}/api/token", json=right, timeout=30).status_code == 429
    assert len(checked) <= limit


def test_a_good_login_at_the_limit_clears_the_lock(client, alice, store_client):
    for _ in range(9):
        client.post("/api/token", json={"username": "alice", "password": "wrong password!"})
    good = {"username": "alice", "password": "correct horse battery"}
    assert client.post("/api/token", json=good).status_code == 200  # the 10th attempt
    assert store_client.get("berater:login-failed:alice") is None
    assert store_client.get("berater:login-locked:alice") is None
    assert client.post("/api/token", json=good).status_code == 200


# --- refresh, check, sign-out ---------------------------------------------------------------


def test_refresh_gives_a_new_token_with_the_roles_held_now(client, ctx):
    token = token_for(client, "o_new")
    assert client.get("/api/token", headers=bearer(token)).get_json()["data"]["roles"] == []
    factories.candidate("o_new")
    db.session.commit()
    refreshed = client.put("/api/token", headers=bearer(token)).get_json()["data"]
    assert refreshed["roles"] == ["candidate"]
    assert refreshed["token"] != token
    assert crypto.read(refreshed["token"]).signed_in_at == crypto.read(token).signed_in_at


def test_a_disabled_account_cannot_refresh(client, alice):
    """Disabling signs the account out through a mark in the store; should that mark be
    missing (not written after the commit, or lost with the store), a refresh still asks
    the database. Here the account is disabled in the database alone."""
    good = {"username": "alice", "password": "correct horse battery"}
    token = client.post("/api/token", json=good).get_json()["data"]["token"]
    alice.disabled = True
    db.session.commit()
    refused = client.put("/api/token", headers=bearer(token))
    assert refused.status_code == 401
    assert "disabled" in refused.get_json()["error"]
    alice.disabled = False
    db.session.commit()
    assert client.put("/api/token", headers=bearer(token)).status_code == 200


def test_refresh_is_refused_past_the_absolute_lifetime(make_app):
    app = make_app(TOKEN_MAX_AGE=60)
    with app.app_context():
        token, _ = crypto.mint("o_old", [], signed_in_at=time.time() - 61)
    response = app.test_client().put("/api/token", headers=bearer(token))
    assert response.status_code == 401
    assert "too old" in response.get_json()["error"]


def test_an_expired_token_is_refused_everywhere(make_app):
    app = make_app(TOKEN_TTL=1)
    client = app.test_client()
    token = token_for(client, "o_brief")
    time.sleep(1.1)
    for method in (client.get, client.put, client.delete):
        response = method("/api/token", headers=bearer(token))
        assert response.status_code == 401
        assert "expired" in response.get_json()["error"]


def test_sign_out_revokes_every_earlier_token(client):
    first = token_for(client, "o_leaving")
    second = token_for(client, "o_leaving")
    assert client.delete("/api/token", headers=bearer(first)).status_code == 200
    for token in (first, second):
        response = client.get("/api/token", headers=bearer(token))
        assert response.status_code == 401
        assert "revoked" in response.get_json()["error"]
        assert client.put("/api/token", headers=bearer(token)).status_code == 401
    time.sleep(0.01)
    fresh = token_for(client, "o_leaving")
    assert client.get("/api/token", headers=bearer(fresh)).status_code == 200


def test_a_revoked_role_disappears_from_the_next_check_of_an_old_token(client, ctx):
    factories.privilege("o_staff", "admin")
    db.session.commit()
    token = token_for(client, "o_staff")
    assert client.get("/api/token", headers=bearer(token)).get_json()["data"]["roles"] == ["admin"]
    subjects.revoke_role("o_staff", "admin")
    db.session.commit()
    response = client.get("/api/token", headers=bearer(token))
    assert response.status_code == 200
    assert response.get_json()["data"]["roles"] == []


def test_revocation_reaches_another_worker_within_the_sync_interval(make_app):
    one, two = make_app(REVOCATION_SYNC=0.3), make_app(REVOCATION_SYNC=0.3)
    token = token_for(one.test_client(), "o_roaming")
    assert two.test_client().get("/api/token", headers=bearer(token)).status_code == 200
    with one.app_context():
        revocation.sign_out("o_roaming")
    deadline = time.monotonic() + 1.0
    while two.test_client().get("/api/token", headers=bearer(token)).status_code != 401:
        assert time.monotonic() < deadline, "the other worker never saw the revocation"
        time.sleep(0.02)


def test_the_test_token_route_does_not_exist_in_production(prod_app):
    response = prod_app.test_client().post("/api/test/token/o_anyone")
    assert response.status_code == 404
    assert response.get_json()["code"] == 404


def test_a_development_key_token_is_refused_in_production(client, prod_app):
    dev_token = token_for(client, "o_dev")
    assert prod_app.test_client().get("/api/token", headers=bearer(dev_token)).status_code == 401


# --- the Authorization header ---------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        "Bearer",
        "Bearer ",
        "Bearer    ",
        "Basic dXNlcjpwYXNz",
        "Token abc",
        "Bearer face ",
        "Bearer face",
        "Bearer  face dev-face-app-token",
        "Bearer face  dev-face-app-token",
        "Bearer face dev-face-app-token extra",
        "Bearer nova dev-face-app-token",
        "Bearer face wrong-secret",
        "Bearer face dev-face-app-tokenX",
        "Bearer " + "a" * 10_000,
        "Bearer\tabc",
        "bearer not-a-token",
    ],
)
def test_bad_authorization_headers_get_401_and_no_role(client, header):
    response = client.get("/api/token", headers={"Authorization": header})
    assert response.status_code == 401
    body = response.get_json()
    assert body["code"] == 401
    assert body["data"] is None
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_missing_authorization_header_is_401(client):
    assert client.get("/api/token").status_code == 401


def test_the_scheme_name_is_case_insensitive(client):
    token = token_for(client, "o_case")
    for scheme in ("bearer", "BEARER", "BeArEr"):
        response = client.get("/api/token", headers={"Authorization": f"{scheme} {token}"})
        assert response.status_code == 200


def test_an_app_token_grants_the_role_named_after_the_app(client):
    response = client.get("/api/token", headers={"Authorization": "Bearer face dev-face-app-token"})
    assert response.status_code == 200
    data = response.get_json()["data"]
    assert data["kind"] == "app"
    assert data["roles"] == ["face"]


def test_an_app_without_a_configured_secret_is_disabled(make_app):
    client = make_app(APP_TOKENS={"face": ""}).test_client()
    for header in ("Bearer face ", "Bearer face x"):
        assert client.get("/api/token", headers={"Authorization": header}).status_code == 401


def test_an_app_token_cannot_refresh_or_sign_out(client):
    header = {"Authorization": "Bearer face dev-face-app-token"}
    assert client.put("/api/token", headers=header).status_code == 403
    assert client.delete("/api/token", headers=header).status_code == 403
