"""Pending invitation links: what the list shows, when a link leaves it, cancelling one, and
that neither the store nor the log ever holds a link."""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests

from berater.admin import invites
from berater.db import db, transaction
from berater.errors import NotFound
from berater.identity import subjects
from tests import factories
from tests.admin.helpers import (
    ADMIN,
    TIMEOUT,
    assert_page,
    audit_rows,
    bearer,
    holders,
    new_link,
    seq_of,
    test_token,
)

pytestmark = pytest.mark.backends


def digest(link: str) -> str:
    return hashlib.sha256(seq_of(link).encode("ascii")).hexdigest()


def pending(base: str, token: str) -> list[dict]:
    answer = requests.get(f"{base}/api/admin/invitations", headers=bearer(token), timeout=TIMEOUT)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Cache-Control"] == "no-store"
    return answer.json()["data"]["invitations"]


def cancel(base: str, token: str, digest: str) -> requests.Response:
    return requests.post(
        f"{base}/api/admin/invitations/{digest}/cancel", headers=bearer(token), timeout=TIMEOUT
    )


def test_the_list_shows_each_pending_link_newest_first_without_the_link(
    app, live_server, admin_token
):
    before = datetime.now(UTC).replace(microsecond=0)
    first = new_link(live_server, admin_token, "face")
    second = new_link(live_server, admin_token, "nova_admin")

    listed = pending(live_server, admin_token)

    assert [(p["digest"], p["role"], p["inviter"]) for p in listed] == [
        (digest(second), "nova_admin", ADMIN),
        (digest(first), "face", ADMIN),
    ]
    for item in listed:
        created = datetime.fromisoformat(item["created_at"].replace("Z", "+00:00"))
        expires = datetime.fromisoformat(item["expires_at"].replace("Z", "+00:00"))
        assert before - timedelta(seconds=1) <= created <= datetime.now(UTC)
        assert timedelta(minutes=29) < expires - created <= timedelta(minutes=30, seconds=1)
        assert item["audit_target"] == "invite:" + item["digest"][:16]
    text = str(listed)
    assert seq_of(first) not in text and seq_of(second) not in text
    made = [(row[2], row[3]) for row in audit_rows(app, "invite_create")]
    assert made == [(listed[1]["audit_target"], "face"), (listed[0]["audit_target"], "nova_admin")]


def test_the_store_never_holds_a_link(app, live_server, admin_token, store_client):
    links = [new_link(live_server, admin_token, role) for role in ("face", "admin")]
    pending(live_server, admin_token)

    everything = []
    for key in store_client.scan_iter("*"):
        everything.append(key)
        kind = store_client.type(key)
        if kind == "string":
            everything.append(store_client.get(key))
        elif kind == "zset":
            everything.extend(store_client.zrange(key, 0, -1))
    dump = " ".join(everything)
    for link in links:
        assert digest(link) in dump  # the list's own key: only the digest
        assert seq_of(link) not in dump


def test_a_confirmed_link_leaves_the_list(app, live_server, wechat, browser, admin_token):
    used = new_link(live_server, admin_token, "face")
    kept = new_link(live_server, admin_token, "face")
    person = browser("o_invitee")
    assert_page(person.confirm(person.open(used)), 200)

    assert [p["digest"] for p in pending(live_server, admin_token)] == [digest(kept)]


def test_an_expired_link_leaves_the_list_and_the_list_goes_with_it(
    make_app, serve, grant, store_client
):
    app = make_app(INVITE_TTL=1)
    base = serve(app)
    grant(app, ADMIN, "admin")
    token = test_token(base, ADMIN)
    new_link(base, token, "face")
    assert len(pending(base, token)) == 1

    time.sleep(1.3)

    assert pending(base, token) == []
    pending_set = f"berater:{invites.PENDING_AREA}:{invites.PENDING_KEY}"
    assert app.extensions["berater.store"].exists(pending_set) == 0


def test_a_link_whose_inviter_lost_admin_is_not_pending(app, live_server, admin_token, grant):
    grant(app, "o_other_admin", "admin")
    other = test_token(live_server, "o_other_admin")
    kept = new_link(live_server, admin_token, "face")
    new_link(live_server, other, "face")
    with app.app_context():
        subjects.revoke_role("o_other_admin", "admin")
        db.session.commit()

    assert [p["digest"] for p in pending(live_server, admin_token)] == [digest(kept)]


def test_a_cancelled_link_is_gone_and_the_cancel_is_audited(
    app, live_server, wechat, browser, admin_token
):
    link = new_link(live_server, admin_token, "nova_admin")

    answer = cancel(live_server, admin_token, digest(link))

    assert answer.status_code == 200, answer.text
    assert answer.json()["data"]["role"] == "nova_admin"
    assert pending(live_server, admin_token) == []
    assert_page(browser("o_late").open(link), 404)
    assert holders(app, "nova_admin") == []
    target = "invite:" + digest(link)[:16]
    assert audit_rows(app, "invite_cancel") == [
        (ADMIN, "invite_cancel", target, "nova_admin", "127.0.0.1")
    ]
    again = cancel(live_server, admin_token, digest(link))
    assert again.status_code == 404
    assert again.json()["code"] == 404
    assert len(audit_rows(app, "invite_cancel")) == 1


def test_a_confirmed_link_cannot_be_cancelled(app, live_server, wechat, browser, admin_token):
    link = new_link(live_server, admin_token, "face")
    person = browser("o_quick")
    assert_page(person.confirm(person.open(link)), 200)

    assert cancel(live_server, admin_token, digest(link)).status_code == 404
    assert holders(app, "face") == ["o_quick"]
    assert audit_rows(app, "invite_cancel") == []


@pytest.mark.parametrize("bad", ["0" * 63, "G" * 64, "A" * 64, "x", "0" * 65])
def test_a_malformed_digest_is_not_found(live_server, admin_token, bad):
    assert cancel(live_server, admin_token, bad).status_code == 404


def test_only_an_admin_lists_or_cancels(app, live_server, admin_token, grant):
    link = new_link(live_server, admin_token, "face")
    grant(app, "o_helper", "nova_admin")
    for token in (test_token(live_server, "o_helper"), test_token(live_server, "o_nobody")):
        listed = requests.get(
            f"{live_server}/api/admin/invitations", headers=bearer(token), timeout=TIMEOUT
        )
        assert listed.status_code == 403
        assert cancel(live_server, token, digest(link)).status_code == 403
    assert len(pending(live_server, admin_token)) == 1


def test_the_service_stores_a_link_only_once_its_audit_row_commits(ctx):
    factories.privilege(ADMIN, "admin")
    db.session.commit()
    try:
        with transaction():
            seq, _ = invites.create(ADMIN, "face")
            raise RuntimeError("the request failed before its commit")
    except RuntimeError:
        pass
    with pytest.raises(NotFound):
        invites.peek(seq)
    assert invites.pending() == []

    with transaction():
        seq, _ = invites.create(ADMIN, "face")
    assert invites.peek(seq).role == "face"
    assert [p.role for p in invites.pending()] == ["face"]


def test_no_link_reaches_the_log(app, live_server, wechat, browser, admin_token, log_records):
    link = new_link(live_server, admin_token, "face")
    pending(live_server, admin_token)
    person = browser("o_invitee")
    assert_page(person.confirm(person.open(link)), 200)
    cancel(live_server, admin_token, digest(new_link(live_server, admin_token, "face")))

    ours = [r for r in log_records if r.name.startswith("berater")]
    assert ours, "the requests were logged"
    assert not any(seq_of(link) in r.getMessage() for r in ours)
