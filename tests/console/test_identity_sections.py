"""The console's roles, invitations, password accounts and audit trail over real HTTP: who
may open them, the confirmation steps, CSRF on every change, what is audited, and what a
refusal looks like."""

from __future__ import annotations

import csv
import io
import re

import pytest
import requests
import segno
from flask import Flask

from berater.db import db
from berater.identity import audit, roles
from berater.models import AuthUser
from tests.admin.helpers import audit_rows, element_attr, element_text, holders
from tests.admin.test_qr import modules
from tests.console.conftest import (
    PASSWORD,
    TIMEOUT,
    Staff,
    csrf_of,
    post_sign_in,
    send_form,
    sign_in_http,
)

pytestmark = pytest.mark.backends

STRICT_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
PAGES = ("roles", "invitations", "accounts", "audit", "audit/export.csv")
GOOD = "Gentle-Harbour-71"


@pytest.fixture
def office(live_server: str, staff: Staff) -> requests.Session:
    """A browser signed in to the console as `office`, a password account holding admin."""
    staff.account("office", roles.ADMIN)
    return sign_in_http(live_server, "office")


def get(http: requests.Session, url: str) -> requests.Response:
    return http.get(url, allow_redirects=False, timeout=TIMEOUT)


def post(http: requests.Session, url: str, page: str | None = None, **data: str):
    """POST a console form with the CSRF token of `page` (the console's start page if None)."""
    base = url.split("/admin/")[0]
    token = csrf_of(page if page is not None else get(http, f"{base}/admin/").text)
    return send_form(http, url, token, **data)


def notices(http: requests.Session, url: str) -> str:
    """The page at `url` after a redirect, with the notice the change left."""
    page = get(http, url)
    assert page.status_code == 200, page.text
    found = re.findall(r'data-notice="(\w+)">([^<]*)<', page.text)
    return " | ".join(f"{kind}: {text}" for kind, text in found)


# -- who may open them -------------------------------------------------------------------------


@pytest.mark.parametrize("path", PAGES)
def test_every_section_is_a_strict_uncached_page_for_an_admin(live_server, office, path):
    answer = get(office, f"{live_server}/admin/{path}")
    assert answer.status_code == 200, answer.text
    assert answer.headers["Cache-Control"] == "no-store"
    if not path.endswith(".csv"):
        assert answer.headers["Content-Security-Policy"] == STRICT_CSP
        assert element_text(answer.text, "who") == "office"


@pytest.mark.parametrize("path", PAGES)
def test_a_visitor_is_sent_to_sign_in_and_a_club_admin_is_refused(live_server, staff, path):
    visitor = get(requests.Session(), f"{live_server}/admin/{path}")
    assert visitor.status_code == 303
    assert visitor.headers["Location"].startswith("/admin/signin?next=")

    staff.account("club", roles.NOVA_ADMIN)
    club = sign_in_http(live_server, "club")
    refused = get(club, f"{live_server}/admin/{path}")
    assert refused.status_code == 403
    assert refused.headers["Cache-Control"] == "no-store"
    assert 'id="status"' in refused.text


CHANGES = [
    ("roles/face/revoke", {"subject": "o_holder", "confirmed": "yes"}),
    ("invitations", {"role": "face"}),
    ("invitations/cancel", {"digest": "0" * 64}),
    ("accounts", {"username": "newbie", "password": GOOD, "password2": GOOD}),
    ("accounts/office/password", {"password": GOOD, "password2": GOOD}),
    ("accounts/office/disable", {"confirmed": "yes"}),
    ("accounts/office/enable", {}),
]


@pytest.mark.parametrize(("path", "data"), CHANGES)
def test_every_change_needs_the_csrf_token_of_the_session(
    app, live_server, office, staff, path, data
):
    staff.wechat("o_holder", roles.FACE)
    for token in ({}, {"csrf_token": ""}, {"csrf_token": "forged"}):
        refused = office.post(
            f"{live_server}/admin/{path}",
            data={**data, **token},
            allow_redirects=False,
            timeout=TIMEOUT,
        )
        assert refused.status_code == 403, refused.text
        assert "did not come from the console" in element_text(refused.text, "message")
    assert audit_rows(app) == []
    assert holders(app, roles.FACE) == ["o_holder"]
    staff.account("club", roles.NOVA_ADMIN)
    club = sign_in_http(live_server, "club")
    assert post(club, f"{live_server}/admin/{path}", **data).status_code == 403
    assert audit_rows(app) == []


# -- roles ---------------------------------------------------------------------------------------


def test_the_roles_page_lists_every_grantable_role_with_its_holders(live_server, office, staff):
    staff.wechat("o_photo", roles.FACE)
    staff.wechat("o_club", roles.NOVA_ADMIN, roles.FACE)
    page = get(office, f"{live_server}/admin/roles").text
    for role in ("admin", "nova_admin", "face"):
        assert f'id="role-{role}"' in page
    face = page[page.index('id="role-face"') :]
    assert 'data-subject="o_photo"' in face and 'data-subject="o_club"' in face
    assert "/admin/audit?target=o_photo" in face


def test_revoking_asks_first_then_revokes_and_audits(app, live_server, office, staff):
    staff.wechat("o_photo", roles.FACE)
    url = f"{live_server}/admin/roles/face/revoke"

    asked = post(office, url, subject="o_photo")
    assert asked.status_code == 200
    assert "o_photo" in element_text(asked.text, "confirm-subject")
    assert holders(app, roles.FACE) == ["o_photo"]
    assert audit_rows(app) == []

    done = post(office, url, page=asked.text, subject="o_photo", confirmed="yes")
    assert done.status_code == 303 and done.headers["Location"] == "/admin/roles"
    assert "revoked from o_photo" in notices(office, f"{live_server}/admin/roles")
    assert holders(app, roles.FACE) == []
    assert audit_rows(app) == [("user:office", "revoke", "o_photo", "face", "127.0.0.1")]

    again = post(office, url, subject="o_photo", confirmed="yes")
    assert again.status_code == 404
    assert len(audit_rows(app)) == 1


@pytest.mark.parametrize(
    ("role", "subject", "status"),
    [("student", "o_x", 400), ("nope", "o_x", 400), ("face", "a b", 400), ("face", "", 400)],
)
def test_a_bad_revocation_is_refused(app, live_server, office, role, subject, status):
    answer = post(office, f"{live_server}/admin/roles/{role}/revoke", subject=subject)
    assert answer.status_code == status
    assert audit_rows(app) == []


def test_revoking_ones_own_admin_role_warns_and_then_leaves_the_section(app, live_server, office):
    url = f"{live_server}/admin/roles/admin/revoke"
    asked = post(office, url, subject="user:office")
    assert 'id="is-me"' in asked.text
    done = post(office, url, page=asked.text, subject="user:office", confirmed="yes")
    assert done.headers["Location"] == "/admin/"
    assert get(office, f"{live_server}/admin/roles").status_code == 403


# -- invitations ---------------------------------------------------------------------------------


def test_a_new_link_is_shown_once_with_its_qr_code_and_then_listed_without_it(
    app, live_server, office
):
    made = post(office, f"{live_server}/admin/invitations", role="face")

    assert made.status_code == 200
    assert made.headers["Cache-Control"] == "no-store"
    link = element_text(made.text, "link")
    assert link.startswith(f"{live_server}/api/admin/auth?seq=")
    svg = made.text[made.text.index("<svg") : made.text.index("</svg>") + 6]
    assert modules(svg) == [list(r) for r in segno.make(link, error="m", micro=False).matrix]
    seq = link.split("seq=")[1]
    listed = get(office, f"{live_server}/admin/invitations").text
    assert 'id="pending"' in listed and seq not in listed
    assert [r[1] for r in audit_rows(app)] == ["invite_create"]


def test_an_unknown_role_makes_no_link(app, live_server, office):
    for role in ("student", "root", ""):
        answer = post(office, f"{live_server}/admin/invitations", role=role)
        assert answer.status_code == 400
        assert "unknown role" in element_text(answer.text, "message")
    assert audit_rows(app) == []


def test_cancelling_a_link_that_is_gone_is_not_found(app, live_server, office):
    for digest in ("0" * 64, "x", ""):
        answer = post(office, f"{live_server}/admin/invitations/cancel", digest=digest)
        assert answer.status_code == 404
    assert audit_rows(app) == []


def test_a_link_is_cancelled_from_the_list(app, live_server, office, wechat):
    made = post(office, f"{live_server}/admin/invitations", role="nova_admin")
    listed = get(office, f"{live_server}/admin/invitations").text
    digest = re.search(r'data-digest="([0-9a-f]{64})"', listed).group(1)
    assert element_attr(listed, "pending", "class") == "stack"

    done = post(office, f"{live_server}/admin/invitations/cancel", page=listed, digest=digest)

    assert done.status_code == 303
    assert "cancelled" in notices(office, f"{live_server}/admin/invitations")
    opened = requests.get(element_text(made.text, "link"), allow_redirects=False, timeout=TIMEOUT)
    assert opened.status_code == 404
    assert [r[1] for r in audit_rows(app)] == ["invite_create", "invite_cancel"]


# -- password accounts ---------------------------------------------------------------------------


def test_the_rules_are_on_the_page_before_the_first_try(live_server, office):
    page = get(office, f"{live_server}/admin/accounts").text
    rules = page[page.index('id="rules"') :]
    rules = rules[: rules.index("</div>")]
    assert "8–128" in rules and "common password" in rules and "username" in rules
    assert 'minlength="8"' in page and 'maxlength="128"' in page


@pytest.mark.parametrize(
    ("username", "password", "again", "status", "message"),
    [
        ("newbie", "short", "short", 400, "8 to 128"),
        ("newbie", "password123", "password123", 400, "too easy"),
        ("newbie", "newbie-2026-x", "newbie-2026-x", 400, "too easy"),
        ("newbie", GOOD, GOOD + "x", 400, "differ"),
        ("x", GOOD, GOOD, 400, "3-64"),
        ("office", GOOD, GOOD, 409, "taken"),
    ],
)
def test_a_refused_account_shows_the_form_again_with_the_reason(
    app, live_server, office, log_records, username, password, again, status, message
):
    answer = post(
        office,
        f"{live_server}/admin/accounts",
        username=username,
        password=password,
        password2=again,
    )
    assert answer.status_code == status
    assert message in element_text(answer.text, "create-error")
    assert f'value="{username}"' in answer.text
    assert password not in answer.text
    assert not any(password in r.getMessage() for r in log_records)
    assert audit_rows(app) == []


def test_an_account_is_created_reset_disabled_and_enabled(app, live_server, office, staff):
    made = post(
        office, f"{live_server}/admin/accounts", username="Desk", password=GOOD, password2=GOOD
    )
    assert made.status_code == 303
    assert "account desk created" in notices(office, f"{live_server}/admin/accounts")

    form = get(office, f"{live_server}/admin/accounts/desk/password")
    assert element_text(form.text, "account") == "desk"
    reset = post(
        office,
        f"{live_server}/admin/accounts/desk/password",
        page=form.text,
        password="Quiet-Meadow-42",
        password2="Quiet-Meadow-42",
    )
    assert reset.status_code == 303
    # The new password signs in (and is refused only for want of a staff role).
    http = requests.Session()
    tried = post_sign_in(http, live_server, "desk", "Quiet-Meadow-42")
    assert tried.status_code == 403
    assert "admin or nova_admin" in element_text(tried.text, "error")

    asked = post(office, f"{live_server}/admin/accounts/desk/disable")
    assert asked.status_code == 200
    assert element_text(asked.text, "confirm-account") == "desk"
    assert not disabled(app, "desk")
    done = post(office, f"{live_server}/admin/accounts/desk/disable", confirmed="yes")
    assert done.status_code == 303 and disabled(app, "desk")
    back = post(office, f"{live_server}/admin/accounts/desk/enable")
    assert back.status_code == 303 and not disabled(app, "desk")

    assert [r[1:3] for r in audit_rows(app)] == [
        ("user_create", "desk"),
        ("user_reset", "desk"),
        ("user_disable", "desk"),
        ("user_enable", "desk"),
    ]


def test_disabling_ones_own_account_signs_out(app, live_server, office):
    asked = post(office, f"{live_server}/admin/accounts/office/disable")
    assert 'id="is-me"' in asked.text
    post(office, f"{live_server}/admin/accounts/office/disable", confirmed="yes")
    assert get(office, f"{live_server}/admin/accounts").status_code == 303  # to the sign-in


def test_an_unknown_account_is_not_found(app, live_server, office):
    assert get(office, f"{live_server}/admin/accounts/nobody/password").status_code == 404
    for action in ("disable", "enable"):
        answer = post(office, f"{live_server}/admin/accounts/nobody/{action}", confirmed="yes")
        assert answer.status_code == 404
    assert audit_rows(app) == []


def disabled(app: Flask, username: str) -> bool:
    with app.app_context():
        value = db.session.get(AuthUser, username).disabled
        db.session.remove()
    return value


# -- the audit trail -----------------------------------------------------------------------------


@pytest.fixture
def trail(app: Flask) -> None:
    with app.app_context():
        audit.record("cli", audit.GRANT, "o_one", roles.FACE)
        audit.record("user:office", audit.USER_CREATE, "desk")
        audit.record("user:office", audit.GRANT, "user:desk", roles.NOVA_ADMIN)
        db.session.commit()


def test_the_audit_page_filters_and_the_csv_follows_the_filter(live_server, office, trail):
    page = get(office, f"{live_server}/admin/audit?target=user:desk")
    assert element_text(page.text, "total") == "2"  # the grant, and the account's creation
    assert 'value="user:desk"' in page.text
    csv_link = element_attr(page.text, "export", "href")
    assert csv_link == "/admin/audit/export.csv?target=user%3Adesk"
    answer = get(office, f"{live_server}{csv_link}")
    assert answer.headers["Content-Disposition"].startswith("attachment;")
    lines = list(csv.reader(io.StringIO(answer.content.decode("utf-8-sig"))))
    assert [line[3] for line in lines[1:]] == ["user:desk", "desk"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("actor=a%20b", "e-actor"),
        ("action=drop", "e-action"),
        ("role=student", "e-role"),
        ("from=2026-02-30", "e-from"),
        ("from=2026-03-02&to=2026-03-01", "e-to"),
    ],
)
def test_a_bad_filter_is_shown_beside_its_field(live_server, office, trail, query, field):
    page = get(office, f"{live_server}/admin/audit?{query}")
    assert page.status_code == 400
    assert f'id="{field}"' in page.text
    assert f'aria-invalid="true" aria-describedby="{field}"' in page.text  # read out with it
    assert element_text(page.text, "total") == "3"  # the rest of the filter still applies
    export = get(office, f"{live_server}/admin/audit/export.csv?{query}")
    assert export.status_code == 400 and export.headers["Content-Type"].startswith("text/html")


def test_days_are_the_office_s(app, live_server, office):
    from datetime import datetime

    with app.app_context():
        late = audit.record("cli", audit.GRANT, "o_late", roles.FACE)
        late.at = datetime(2026, 3, 1, 16, 30)  # 00:30 on 2 March in Beijing
        db.session.commit()
    one = get(office, f"{live_server}/admin/audit?from=2026-03-02&to=2026-03-02")
    assert element_text(one.text, "total") == "1"
    assert "2026-03-02 00:30:00" in one.text
    before = get(office, f"{live_server}/admin/audit?to=2026-03-01")
    assert element_text(before.text, "total") == "0"


def test_the_password_is_never_in_a_page_or_the_log(app, live_server, office, log_records):
    post(office, f"{live_server}/admin/accounts", username="desk", password=GOOD, password2=GOOD)
    for path in ("accounts", "audit", "audit/export.csv"):
        assert GOOD not in get(office, f"{live_server}/admin/{path}").text
    assert not any(GOOD in r.getMessage() for r in log_records)
    assert PASSWORD not in get(office, f"{live_server}/admin/accounts").text


def test_rows_of_other_sections_are_listed_and_only_names_are_filter_links(
    app, live_server, office
):
    with app.app_context():
        audit.record("user:office", audit.ADMISSION_IMPORT, "inserted=3 updated=1 rejected=2")
        audit.record("user:office", audit.NOVA_CANCEL, "2026123456")
        db.session.commit()
    page = get(office, f"{live_server}/admin/audit")
    assert page.status_code == 200
    assert "admission list imported" in page.text and "club registration cancelled" in page.text
    assert "inserted=3 updated=1 rejected=2</code>" in page.text
    assert "target=inserted" not in page.text  # a text with spaces is no filter
    assert "/admin/audit?target=2026123456" in page.text
    only = get(office, f"{live_server}/admin/audit?action=nova_cancel")
    assert element_text(only.text, "total") == "1"
