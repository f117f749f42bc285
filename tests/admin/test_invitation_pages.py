"""Invitation pages over real HTTP: races, CSRF, the WeChat entry point, what leaks.

SECURITY.md: two parallel openings → one grant; granted on an explicit confirm bound to the
browser's session; the openid and the link never reach a log line or the browser's cookie.
"""

from __future__ import annotations

import html
import logging
import secrets
import threading
from collections.abc import Iterator
from urllib.parse import urljoin, urlsplit

import pytest
import requests

from berater.admin import invites
from tests.admin.helpers import (
    ADMIN,
    EXCHANGE,
    TIMEOUT,
    assert_page,
    audit_rows,
    bearer,
    element_attr,
    element_text,
    holders,
    new_link,
    seq_of,
)

pytestmark = pytest.mark.backends


# -- concurrency -------------------------------------------------------------------------------


@pytest.mark.parametrize("people", ["ten people", "one person in ten tabs"])
def test_ten_parallel_confirms_grant_once(app, live_server, wechat, browser, admin_token, people):
    link = new_link(live_server, admin_token, "face")
    if people == "ten people":
        browsers = [browser(f"o_racer_{i}") for i in range(10)]
        urls = [b.confirm_url(b.open(link)) for b in browsers]
    else:
        one = browser("o_racer")
        url = one.confirm_url(one.open(link))
        browsers = [browser("o_racer") for _ in range(10)]
        for each in browsers:
            each.http.cookies.update(one.http.cookies)
        urls = [url] * 10
    barrier = threading.Barrier(10)
    statuses: list[int] = []
    lock = threading.Lock()

    def press(index: int) -> None:
        barrier.wait()
        status = browsers[index].http.post(urls[index], timeout=TIMEOUT).status_code
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=press, args=(i,)) for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(statuses) == [200] + [410] * 9
    assert len(holders(app, "face")) == 1
    assert len(audit_rows(app, "grant")) == 1


def test_one_person_confirming_several_links_for_one_role_at_once_holds_it_once(
    app, live_server, wechat, browser, admin_token
):
    person = browser("o_eager")
    links = [new_link(live_server, admin_token, "face") for _ in range(3)]
    urls = [person.confirm_url(person.open(link)) for link in links]
    tabs = [browser("o_eager") for _ in urls]
    for tab in tabs:
        tab.http.cookies.update(person.http.cookies)
    barrier = threading.Barrier(len(urls))
    statuses: list[int] = []

    def press(index: int) -> None:
        barrier.wait()
        statuses.append(tabs[index].http.post(urls[index], timeout=TIMEOUT).status_code)

    threads = [threading.Thread(target=press, args=(i,)) for i in range(len(urls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert len(statuses) == len(urls)
    assert set(statuses) <= {200, 409}  # "already held" or a clear conflict, never a 500
    assert holders(app, "face") == ["o_eager"]
    assert len(audit_rows(app, "grant")) == 1


# -- CSRF --------------------------------------------------------------------------------------


def test_a_confirm_without_this_sessions_csrf_token_grants_nothing(
    app, live_server, wechat, browser, admin_token
):
    link = new_link(live_server, admin_token, "admin")
    victim = browser("o_victim")
    preview = victim.open(link)
    url = victim.confirm_url(preview)
    seq = seq_of(link)
    base = f"{live_server}/api/admin/auth"
    attacker = browser("o_attacker")
    attacker.open(new_link(live_server, admin_token, "face"))  # signed in, a session of its own

    attempts = [
        victim.http.post(f"{base}?seq={seq}", timeout=TIMEOUT),  # no token
        victim.http.post(f"{base}?seq={seq}&csrf=", timeout=TIMEOUT),
        victim.http.post(f"{base}?seq={seq}&csrf={secrets.token_urlsafe(32)}", timeout=TIMEOUT),
        attacker.http.post(url, timeout=TIMEOUT),  # the victim's token, another session
        requests.post(url, timeout=TIMEOUT),  # no cookie at all
    ]

    for attempt in attempts:
        assert_page(attempt, 403)
    form_body = victim.http.post(url, data={"seq": seq}, timeout=TIMEOUT)
    assert form_body.status_code in {400, 403, 415}
    assert holders(app, "admin") == [ADMIN]
    assert_page(victim.confirm(preview), 200)  # the invitation was not used up
    assert holders(app, "admin") == sorted([ADMIN, "o_victim"])


# -- the WeChat entry point for admins ---------------------------------------------------------


def test_an_admin_in_wechat_gets_a_link_page_that_works(app, live_server, wechat, browser, grant):
    grant(app, ADMIN, "admin")
    admin = browser(ADMIN)

    page = admin.open(f"{live_server}/api/admin/go/link/nova_admin")

    assert_page(page, 200)
    assert wechat.fake.calls_to(EXCHANGE) == 1  # signed in through WeChat OAuth
    link = element_text(page.text, "link")
    assert link.startswith(f"{live_server}/api/admin/auth?seq=")
    assert element_text(page.text, "role") == "nova_admin"
    again = admin.open(f"{live_server}/api/admin/go/link/nova_admin")
    assert element_text(again.text, "link") != link  # each visit a new link
    assert wechat.fake.calls_to(EXCHANGE) == 1  # the sign-in is kept in the session

    person = browser("o_clubber")
    assert_page(person.confirm(person.open(link)), 200)
    assert holders(app, "nova_admin") == ["o_clubber"]


def test_a_non_admin_in_wechat_gets_a_403_page(app, live_server, wechat, browser, grant):
    grant(app, "o_helper", "face")

    page = browser("o_helper").open(f"{live_server}/api/admin/go/link/face")

    assert_page(page, 403)
    assert "seq=" not in page.text


def test_signing_in_again_switches_the_person_of_the_admin_pages(
    app, live_server, wechat, browser, grant
):
    grant(app, ADMIN, "admin")
    person = browser("o_helper")
    refused = person.open(f"{live_server}/api/admin/go/link/face")
    assert_page(refused, 403)
    switch = urljoin(live_server, html.unescape(element_attr(refused.text, "switch", "href")))

    person.openid = ADMIN  # on WeChat's page this time: the admin
    page = person.open(switch)

    assert_page(page, 200)
    link = element_text(page.text, "link")
    invitee = browser("o_helper")
    preview = invitee.open(link)
    other = urljoin(live_server, html.unescape(element_attr(preview.text, "switch", "href")))
    invitee.openid = "o_someone_else"
    assert_page(invitee.confirm(invitee.open(other)), 200)
    assert holders(app, "face") == ["o_someone_else"]


@pytest.mark.parametrize("target", ["", "/demo/app", "https://partner.test/x", "//evil.example"])
def test_signing_in_again_lands_only_on_admin_pages(live_server, wechat, browser, target):
    response = browser("o_someone").http.get(
        f"{live_server}/api/admin/switch", params={"next": target}, allow_redirects=False
    )

    assert_page(response, 400)
    assert wechat.fake.calls_to("/connect/oauth2/authorize") == 0


def test_an_admin_in_wechat_asking_for_an_unknown_role_gets_a_400_page(
    app, live_server, wechat, browser, grant, store_client
):
    grant(app, ADMIN, "admin")

    page = browser(ADMIN).open(f"{live_server}/api/admin/go/link/root")

    assert_page(page, 400)
    assert not store_client.keys("berater:invite:*")


def test_the_admin_callback_lands_only_on_admin_pages(live_server, wechat, browser):
    person = browser("o_someone")
    start = person.http.get(
        f"{live_server}/signin", params={"next": "/demo/app"}, allow_redirects=False
    )
    authorize = start.headers["Location"].replace("signin%2Fcallback", "api%2Fadmin%2Fcallback")
    assert "api%2Fadmin%2Fcallback" in authorize

    landing = person.open(authorize)

    assert_page(landing, 400)
    assert wechat.fake.calls_to(EXCHANGE) == 0


# -- what leaves the server --------------------------------------------------------------------


@pytest.fixture
def app_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    logger = logging.getLogger("berater")
    logger.addHandler(caplog.handler)
    caplog.set_level(logging.DEBUG, logger="berater")
    try:
        yield caplog
    finally:
        logger.removeHandler(caplog.handler)


def test_neither_the_sequence_nor_the_openid_reaches_a_log_or_the_cookie(
    app, live_server, wechat, browser, admin_token, app_logs
):
    link = new_link(live_server, admin_token, "face")
    person = browser("o_private_person")
    preview = person.open(link)
    person.confirm(preview)
    requests.post(
        f"{live_server}/api/admin/roles/face/revoke",
        json={"subject": "o_private_person"},
        headers=bearer(admin_token),
        timeout=TIMEOUT,
    ).raise_for_status()

    ours = "\n".join(r.getMessage() for r in app_logs.records if r.name.startswith("berater"))
    assert "/api/admin/auth" in ours
    for secret in (seq_of(link), "o_private_person", ADMIN, invites._digest(seq_of(link))):
        assert secret not in ours
    cookie = person.http.cookies.get("session")
    session = app.session_interface.get_signing_serializer(app).loads(cookie)
    assert set(session) >= {"admin_token", "admin_csrf"}
    assert "o_private_person" not in str(session)
    assert urlsplit(link).hostname == "127.0.0.1"
