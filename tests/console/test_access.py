"""Who may open the console, over real HTTP: signing in with a password account or WeChat,
the session cookie, CSRF on every change, the idle timeout, signing out, and the headers."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from flask import Flask

from berater.db import db, transaction
from berater.identity import roles, subjects
from berater.models import Privilege
from tests.admin.helpers import Browser, element_text
from tests.console.conftest import (
    PASSWORD,
    TIMEOUT,
    Staff,
    csrf_of,
    post_sign_in,
    send_form,
    sign_in_http,
)

STRICT_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


def get(http: requests.Session, url: str) -> requests.Response:
    return http.get(url, allow_redirects=False, timeout=TIMEOUT)


def test_a_visitor_is_sent_to_the_sign_in_page_and_back(live_server: str, staff: Staff) -> None:
    http = requests.Session()
    answer = get(http, f"{live_server}/admin/")
    assert answer.status_code == 303
    assert answer.headers["Location"] == "/admin/signin?next=/admin/"
    assert answer.headers["Cache-Control"] == "no-store"
    page = get(http, f"{live_server}/admin/signin?next=/admin/")
    assert page.status_code == 200
    assert page.headers["Content-Security-Policy"] == STRICT_CSP
    assert page.headers["Cache-Control"] == "no-store"
    assert 'id="wechat"' in page.text and 'id="password-form"' in page.text

    staff.account("office", roles.ADMIN)
    signed = http.post(
        f"{live_server}/admin/signin",
        data={
            "csrf_token": csrf_of(page.text),
            "username": "office",
            "password": PASSWORD,
            "next": "/admin/",
        },
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert signed.status_code == 303 and signed.headers["Location"] == "/admin/"
    cookie = signed.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert PASSWORD not in cookie
    home = get(http, f"{live_server}/admin/")
    assert home.status_code == 200
    assert element_text(home.text, "who") == "office"
    assert home.headers["Content-Security-Policy"] == STRICT_CSP
    assert home.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example/admin/", "/api/token", "/admin\\x"]
)
def test_after_signing_in_the_browser_only_goes_to_a_console_page(
    live_server: str, staff: Staff, target: str
) -> None:
    staff.account("office", roles.ADMIN)
    http = requests.Session()
    signed = post_sign_in(http, live_server, "office", PASSWORD, next_page=target)
    assert signed.status_code == 303
    assert signed.headers["Location"] == "/admin/"


def test_a_wrong_password_shows_the_form_again_and_opens_nothing(
    live_server: str, staff: Staff, log_records: list
) -> None:
    staff.account("office", roles.ADMIN)
    http = requests.Session()
    refused = post_sign_in(http, live_server, "office", "wrong-pass-123")
    assert refused.status_code == 401
    assert 'id="error"' in refused.text and 'id="password-form"' in refused.text
    assert 'value="office"' in refused.text  # the username stays typed in
    assert get(http, f"{live_server}/admin/").status_code == 303
    assert not any("wrong-pass-123" in record.getMessage() for record in log_records)


@pytest.mark.parametrize("holding", [(), (roles.FACE,), (roles.STUDENT,)])
def test_an_account_without_a_staff_role_is_refused(
    live_server: str, staff: Staff, holding: tuple[str, ...]
) -> None:
    staff.account("helper", *holding)
    http = requests.Session()
    refused = post_sign_in(http, live_server, "helper", PASSWORD)
    assert refused.status_code == 403
    assert "admin" in element_text(refused.text, "error")
    assert get(http, f"{live_server}/admin/").status_code == 303


def test_a_disabled_account_cannot_sign_in(live_server: str, staff: Staff) -> None:
    staff.account("gone", roles.ADMIN, disabled=True)
    http = requests.Session()
    refused = post_sign_in(http, live_server, "gone", PASSWORD)
    assert refused.status_code == 401
    assert get(http, f"{live_server}/admin/").status_code == 303


@pytest.mark.parametrize("role", [roles.ADMIN, roles.NOVA_ADMIN])
def test_staff_sign_in_with_wechat(live_server: str, wechat, staff: Staff, role: str) -> None:
    openid = staff.wechat(f"o_staff_{role}", role)
    browser = Browser(openid, wechat.url)
    home = browser.open(f"{live_server}/admin/signin/wechat?next=/admin/")
    assert home.status_code == 200, home.text
    assert home.url == f"{live_server}/admin/"
    shown = element_text(home.text, "who")
    assert shown.startswith("微信用户") and openid not in shown
    browser.close()


def test_a_wechat_user_without_a_staff_role_is_refused(live_server: str, wechat) -> None:
    browser = Browser("o_just_a_student", wechat.url)
    refused = browser.open(f"{live_server}/admin/signin/wechat?next=/admin/")
    assert refused.status_code == 403
    assert "admin" in element_text(refused.text, "message")
    assert get(browser.http, f"{live_server}/admin/").status_code == 303
    browser.close()


def _wechat_came_back(browser: Browser, start: str) -> str:
    """Start a sign-in at `start` and approve it on the stand-in WeChat: the callback URL
    WeChat sends the browser to, not yet opened."""
    url = get(browser.http, start).headers["Location"]
    page = browser.http.get(url, timeout=TIMEOUT)
    assert page.status_code == 200, page.text
    return browser._approve(url, page.text)


def test_a_wechat_callback_without_its_code_or_from_elsewhere_is_refused(
    live_server: str, wechat, staff: Staff
) -> None:
    browser = Browser(staff.wechat("o_staff_callback", roles.ADMIN), wechat.url)
    back = _wechat_came_back(browser, f"{live_server}/admin/signin/wechat?next=/admin/")
    query = parse_qs(urlsplit(back).query)
    without_code = get(
        browser.http, f"{live_server}/admin/signin/callback?state={query['state'][0]}"
    )
    assert without_code.status_code == 400
    assert "did not send a sign-in code" in element_text(without_code.text, "message")
    assert get(browser.http, f"{live_server}/admin/").status_code == 303

    # A sign-in started by another set of pages cannot open a console session.
    elsewhere = _wechat_came_back(browser, f"{live_server}/api/admin/go/link/admin")
    query = parse_qs(urlsplit(elsewhere).query)
    refused = get(
        browser.http,
        f"{live_server}/admin/signin/callback?state={query['state'][0]}&code={query['code'][0]}",
    )
    assert refused.status_code == 400
    assert "not started from the console" in element_text(refused.text, "message")
    assert get(browser.http, f"{live_server}/admin/").status_code == 303
    browser.close()


def test_a_change_without_its_csrf_token_is_refused(live_server: str, staff: Staff) -> None:
    staff.account("office", roles.ADMIN)
    http = sign_in_http(live_server, "office")
    for data in ({}, {"csrf_token": "forged"}, {"csrf_token": ""}):
        refused = http.post(
            f"{live_server}/admin/signout", data=data, allow_redirects=False, timeout=TIMEOUT
        )
        assert refused.status_code == 403
        assert "did not come from the console" in element_text(refused.text, "message")
        assert refused.headers["Content-Security-Policy"] == STRICT_CSP
        assert refused.headers["Cache-Control"] == "no-store"
    assert get(http, f"{live_server}/admin/").status_code == 200  # still signed in
    # A script sends the token as a header instead of a field.
    home = get(http, f"{live_server}/admin/")
    by_header = http.post(
        f"{live_server}/admin/signout",
        headers={"X-CSRF-Token": csrf_of(home.text)},
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert by_header.status_code == 303


def test_a_csrf_token_of_another_session_is_refused(live_server: str, staff: Staff) -> None:
    staff.account("office", roles.ADMIN)
    staff.account("other", roles.ADMIN)
    mine = sign_in_http(live_server, "office")
    theirs = sign_in_http(live_server, "other")
    their_token = csrf_of(get(theirs, f"{live_server}/admin/").text)
    refused = send_form(mine, f"{live_server}/admin/signout", their_token)
    assert refused.status_code == 403


def test_signing_out_ends_the_session_also_for_a_copy_of_the_cookie(
    live_server: str, staff: Staff
) -> None:
    staff.account("office", roles.ADMIN)
    http = sign_in_http(live_server, "office")
    copied = requests.Session()
    copied.cookies.update(http.cookies)
    home = get(http, f"{live_server}/admin/")
    out = send_form(http, f"{live_server}/admin/signout", csrf_of(home.text))
    assert out.status_code == 303 and out.headers["Location"].startswith("/admin/signin")
    assert get(http, f"{live_server}/admin/").status_code == 303
    replay = get(copied, f"{live_server}/admin/")
    assert replay.status_code == 303
    assert "ended" in parse_qs(urlsplit(replay.headers["Location"]).query)["reason"][0]


@pytest.mark.parametrize("settings", [{"CONSOLE_IDLE_SECONDS": 1}], indirect=True)
def test_an_idle_session_times_out(live_server: str, staff: Staff) -> None:
    staff.account("office", roles.ADMIN)
    http = sign_in_http(live_server, "office")
    assert get(http, f"{live_server}/admin/").status_code == 200
    time.sleep(1.5)  # longer than CONSOLE_IDLE_SECONDS without a request
    answer = get(http, f"{live_server}/admin/")
    assert answer.status_code == 303
    reason = parse_qs(urlsplit(answer.headers["Location"]).query)["reason"][0]
    assert "without activity" in reason
    assert get(http, f"{live_server}/admin/").status_code == 303  # and it stays ended


@pytest.mark.parametrize("settings", [{"CONSOLE_IDLE_SECONDS": 3, "TOKEN_TTL": 2}], indirect=True)
def test_an_active_session_stays_open_past_the_token_lifetime(
    live_server: str, staff: Staff
) -> None:
    staff.account("office", roles.ADMIN)
    http = sign_in_http(live_server, "office")
    deadline = time.monotonic() + 4.5  # past the idle time and the first token's lifetime
    while time.monotonic() < deadline:
        assert get(http, f"{live_server}/admin/").status_code == 200
        time.sleep(0.4)


def test_a_role_taken_away_counts_at_the_next_request(
    app: Flask, live_server: str, staff: Staff
) -> None:
    staff.account("office", roles.ADMIN)
    http = sign_in_http(live_server, "office")
    assert get(http, f"{live_server}/admin/").status_code == 200
    with app.app_context():
        with transaction():
            subjects.revoke_role("user:office", roles.ADMIN)
        assert db.session.query(Privilege).filter_by(openid="user:office").count() == 0
    refused = get(http, f"{live_server}/admin/")
    assert refused.status_code == 403
