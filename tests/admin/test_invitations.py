"""Invitation links over real HTTP: the admin asks, the invitee previews and confirms.

Every request goes through `requests` to the app served on a loopback port and to the
stand-in WeChat (SECURITY.md, invitation links: 256-bit random, 30 min, single use, granted
on an explicit confirm, not on a GET preview; used, expired, random or malformed → 404/410;
a non-admin → 403; an unknown role → 400).
"""

from __future__ import annotations

import hashlib
import secrets
import time

import pytest
import requests

from berater.db import db
from tests import factories
from tests.admin.helpers import (
    ADMIN,
    EXCHANGE,
    TIMEOUT,
    assert_page,
    audit_rows,
    bearer,
    element_text,
    holders,
    new_link,
    roles_of,
    seq_of,
    test_token,
)

pytestmark = pytest.mark.backends


# -- the whole flow ----------------------------------------------------------------------------


def test_an_admin_link_grants_the_role_on_confirm_and_the_old_token_sees_it(
    app, live_server, wechat, browser, admin_token
):
    invitee_token = test_token(live_server, "o_invitee")  # signed in to a partner app earlier
    assert roles_of(live_server, invitee_token) == []

    answer = requests.get(
        f"{live_server}/api/admin/link/face", headers=bearer(admin_token), timeout=TIMEOUT
    )

    assert answer.status_code == 200, answer.text
    data = answer.json()["data"]
    assert data["seq_expires_in"] == 30 * 60
    assert data["role"] == "face"
    assert data["link"].startswith(f"{live_server}/api/admin/auth?seq=")
    seq = seq_of(data["link"])
    assert len(seq) == 43  # 256 bits, URL-safe base64 without padding

    person = browser("o_invitee")
    preview = person.open(data["link"])

    assert_page(preview, 200)
    assert element_text(preview.text, "role") == "face"
    assert "o_admin" not in preview.text  # the inviter's openid is not shown
    assert holders(app, "face") == []
    assert roles_of(live_server, invitee_token) == []

    done = person.confirm(preview)

    assert_page(done, 200)
    assert "Granted" in done.text
    assert holders(app, "face") == ["o_invitee"]
    assert roles_of(live_server, invitee_token) == ["face"]
    made = (ADMIN, "invite_create", f"invite:{sha256(seq)[:16]}", "face", "127.0.0.1")
    granted = (ADMIN, "grant", "o_invitee", "face", "127.0.0.1")
    assert audit_rows(app) == [made, granted]
    listed = requests.get(
        f"{live_server}/api/admin/audit", headers=bearer(admin_token), timeout=TIMEOUT
    ).json()["data"]
    assert listed["total"] == 2
    assert [item["action"] for item in listed["items"]] == ["grant", "invite_create"]
    assert listed["items"][0]["target"] == "o_invitee"
    assert seq not in str(listed)  # the trail names the link by the start of its digest


def test_the_preview_grants_nothing_however_often_it_is_opened(
    app, live_server, wechat, browser, admin_token
):
    link = new_link(live_server, admin_token, "nova_admin")
    person = browser("o_curious")

    for _ in range(3):
        assert_page(person.open(link), 200)
    other = browser("o_other")
    assert_page(other.open(link), 200)

    assert holders(app, "nova_admin") == []
    assert audit_rows(app, "grant") == []
    assert_page(person.confirm(person.open(link)), 200)  # still usable afterwards
    assert holders(app, "nova_admin") == ["o_curious"]


def test_a_used_link_is_gone_for_everybody(app, live_server, wechat, browser, admin_token):
    link = new_link(live_server, admin_token, "face")
    first = browser("o_first")
    preview = first.open(link)
    assert_page(first.confirm(preview), 200)

    again = first.confirm(preview)
    reopened = first.open(link)
    latecomer = browser("o_late").open(link)

    for response in (again, reopened, latecomer):
        assert_page(response, 410)
        assert 'id="message"' in response.text
    assert holders(app, "face") == ["o_first"]
    assert len(audit_rows(app, "grant")) == 1


def test_a_random_sequence_is_not_found(live_server, wechat, browser, admin_token):
    new_link(live_server, admin_token, "face")  # a real one exists; this is another
    person = browser("o_guess")
    link = f"{live_server}/api/admin/auth?seq={secrets.token_urlsafe(32)}"

    assert_page(person.open(link), 404)
    posted = person.http.post(link, timeout=TIMEOUT)
    assert posted.status_code in {403, 404}  # no session CSRF token: refused either way
    assert wechat.fake.calls_to(EXCHANGE) == 0  # a dead link does not even ask for a sign-in


@pytest.mark.parametrize(
    "seq",
    [
        "",
        "abc",
        "A" * 42,
        "A" * 44,
        "A" * 42 + "=",
        "A" * 42 + "%",
        "A" * 41 + "/.",
        "A" * 42 + "é",
        "A" * 10_000,
    ],
    ids=["empty", "short", "42", "44", "padding", "percent", "slash", "non-ascii", "huge"],
)
def test_a_malformed_sequence_is_not_found_without_asking_the_store(
    live_server, wechat, browser, store_client, seq
):
    person = browser("o_guess")
    before = _store_calls(store_client)

    response = person.http.get(
        f"{live_server}/api/admin/auth", params={"seq": seq}, timeout=TIMEOUT
    )

    assert_page(response, 404)
    assert _store_calls(store_client) == before
    missing = person.http.get(f"{live_server}/api/admin/auth", timeout=TIMEOUT)
    assert_page(missing, 404)


def _store_calls(client) -> int:
    """Commands the store server has run, the INFO asking for this count excluded."""
    stats = client.info("commandstats")
    return sum(v["calls"] for k, v in stats.items() if k not in {"cmdstat_info"})


def test_an_expired_link_is_not_found(make_app, serve, wechat, browser, grant):
    app = make_app(INVITE_TTL=1)
    base = serve(app)
    grant(app, ADMIN, "admin")
    answer = requests.get(
        f"{base}/api/admin/link/face",
        headers=bearer(test_token(base, ADMIN)),
        timeout=TIMEOUT,
    ).json()["data"]
    assert answer["seq_expires_in"] == 1
    person = browser("o_slow")
    preview = person.open(answer["link"])
    assert_page(preview, 200)

    time.sleep(1.3)

    assert_page(person.confirm(preview), 404)
    assert_page(person.open(answer["link"]), 404)
    assert holders(app, "face") == []


# -- who may ask, and for what -----------------------------------------------------------------


def test_a_non_admin_may_not_ask_for_a_link(app, live_server, grant):
    grant(app, "o_helper", "nova_admin")
    for token in (test_token(live_server, "o_helper"), test_token(live_server, "o_nobody")):
        for role in ("face", "admin", "no_such_role"):
            answer = requests.get(
                f"{live_server}/api/admin/link/{role}", headers=bearer(token), timeout=TIMEOUT
            )
            assert answer.status_code == 403, answer.text
            assert answer.json()["code"] == 403
    anonymous = requests.get(f"{live_server}/api/admin/link/face", timeout=TIMEOUT)
    assert anonymous.status_code == 401
    app_token = {"Authorization": "Bearer face dev-face-app-token"}
    assert (
        requests.get(
            f"{live_server}/api/admin/link/face", headers=app_token, timeout=TIMEOUT
        ).status_code
        == 403
    )


@pytest.mark.parametrize("role", ["root", "student", "candidate", "ADMIN", "face%20", "x" * 300])
def test_an_unknown_role_is_a_bad_request(live_server, admin_token, store_client, role):
    answer = requests.get(
        f"{live_server}/api/admin/link/{role}", headers=bearer(admin_token), timeout=TIMEOUT
    )

    assert answer.status_code == 400, answer.text
    assert "unknown role" in answer.json()["error"]
    assert not store_client.keys("berater:invite:*")


def test_a_link_dies_with_its_inviters_admin_role(app, live_server, wechat, browser, admin_token):
    link = new_link(live_server, admin_token, "admin")
    person = browser("o_invitee")
    preview = person.open(link)
    assert_page(preview, 200)
    runner = app.test_cli_runner()
    assert runner.invoke(args=["role", "revoke", ADMIN, "admin"]).exit_code == 0

    assert_page(person.open(link), 403)
    assert_page(person.confirm(preview), 403)
    assert holders(app, "admin") == []


def test_a_password_account_admin_invites_under_its_name(app, live_server, wechat, browser, grant):
    with app.app_context():
        factories.auth_user("alice", "correct horse battery")
        db.session.commit()
    grant(app, "user:alice", "admin")
    token = requests.post(
        f"{live_server}/api/token",
        json={"username": "alice", "password": "correct horse battery"},
        timeout=TIMEOUT,
    ).json()["data"]["token"]
    link = new_link(live_server, token, "face")

    person = browser("o_invitee")
    preview = person.open(link)

    assert_page(preview, 200)
    assert element_text(preview.text, "offer") == "<strong>alice"  # the inviter, by name
    assert_page(person.confirm(preview), 200)
    assert audit_rows(app, "grant") == [("user:alice", "grant", "o_invitee", "face", "127.0.0.1")]
    assert [row[:2] for row in audit_rows(app, "invite_create")] == [
        ("user:alice", "invite_create")
    ]


def sha256(seq: str) -> str:
    return hashlib.sha256(seq.encode("ascii")).hexdigest()
