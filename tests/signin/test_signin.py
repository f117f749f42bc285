"""The browser sign-in over real HTTP: /signin -> stand-in WeChat -> /signin/callback -> app.

Every request goes through `requests` to the app served by `live_server` and to the stand-in
WeChat on its own port, as a browser would: cookies in a `requests.Session`, redirects taken
one at a time so each hop can be checked (SECURITY.md, OAuth line: state bound to the browser
session, code single use, redirect targets only on allowlisted hosts).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from urllib.parse import parse_qs, urldefrag, urljoin, urlsplit

import pytest
import requests
from flask import Flask

from berater.db import db
from berater.settings import default
from tests import factories

EXCHANGE = "/sns/oauth2/access_token"
AUTHORIZE = "/connect/oauth2/authorize"
TIMEOUT = 10  # seconds; any hop of the flow must answer well within this


# -- a browser made of requests ---------------------------------------------------------------


class _FormReader(HTMLParser):
    """The stand-in's sign-in form as a person sees it: action, method and its fields."""

    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.method = ""
        self.hidden: dict[str, str] = {}
        self.inputs: list[str] = []
        self.presets: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.action, self.method = a.get("action", ""), a.get("method", "get").lower()
        elif tag == "input" and a.get("type") == "hidden":
            self.hidden[a["name"]] = a.get("value", "")
        elif tag == "input":
            self.inputs.append(a.get("name", ""))
        elif tag == "button" and a.get("name") == "preset":
            self.presets.append(a.get("value", ""))


@pytest.fixture
def http() -> Iterator[requests.Session]:
    """One browser: its own cookie jar (and so its own sign-in session)."""
    with requests.Session() as session:
        yield session


def begin(http: requests.Session, base: str, next_: str | None = "/demo/app") -> str:
    """GET /signin and return the stand-in's authorize URL it redirects to."""
    params = {} if next_ is None else {"next": next_}
    response = http.get(f"{base}/signin", params=params, allow_redirects=False, timeout=TIMEOUT)
    assert response.status_code == 302, response.text
    return response.headers["Location"]


def approve(http: requests.Session, authorize_url: str, openid: str) -> str:
    """Open the stand-in's page, type `openid` and submit; return the callback URL it sends."""
    url, fragment = urldefrag(authorize_url)
    assert fragment == "wechat_redirect"  # WeChat's documented suffix
    page = http.get(url, timeout=TIMEOUT)
    assert page.status_code == 200, page.text
    assert page.headers["Content-Type"].startswith("text/html")
    form = _FormReader()
    form.feed(page.text)
    assert form.method == "post"
    assert "openid" in form.inputs
    assert {"appid", "redirect_uri", "scope", "state"} <= form.hidden.keys()
    answer = http.post(
        urljoin(url, form.action),
        data={**form.hidden, "openid": openid},
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert answer.status_code == 302, answer.text
    return answer.headers["Location"]


def callback_url(http: requests.Session, base: str, openid: str, next_: str | None) -> str:
    """Run the flow up to (not including) the app's callback; return the callback URL."""
    return approve(http, begin(http, base, next_), openid)


def token_from(location: str) -> str:
    fragment = urlsplit(location).fragment
    assert fragment.startswith("token="), location
    return fragment.removeprefix("token=")


def who(base: str, token: str) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"}
    return requests.get(f"{base}/api/token", headers=headers, timeout=TIMEOUT)


def assert_error_page(response: requests.Response, status: int) -> None:
    """A page for a person: HTML with the status, no redirect and no token anywhere."""
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("text/html")
    assert 'id="message"' in response.text
    assert "Location" not in response.headers
    assert "gAAAAA" not in response.text  # no Fernet token
    assert "token=" not in response.text


def bind_student(app: Flask, openid: str) -> str:
    """A student bound to `openid`; returns the student number."""
    with app.app_context():
        source = factories.source_student()
        factories.student(openid, source)
        stuid = source.stuid
        db.session.commit()
    return stuid


# -- the happy path ---------------------------------------------------------------------------


def test_full_sign_in_lands_in_the_app_with_a_working_token(app, live_server, wechat, http):
    stuid = bind_student(app, "o_test_student")

    authorize = begin(http, live_server, "/demo/app")
    parts = urlsplit(authorize)
    assert f"{parts.scheme}://{parts.netloc}" == wechat.url
    assert parts.path == AUTHORIZE
    query = parse_qs(parts.query)
    assert query["appid"] == [app.config["WECHAT_APPID"]]
    assert query["redirect_uri"] == [f"{live_server}/signin/callback"]
    assert query["response_type"] == ["code"]
    assert query["scope"] == ["snsapi_base"]
    state = query["state"][0]
    assert len(state) >= 32

    callback = approve(http, authorize, "o_test_student")
    back = urlsplit(callback)
    assert f"{back.scheme}://{back.netloc}{back.path}" == f"{live_server}/signin/callback"
    back_query = parse_qs(back.query)
    assert back_query["state"] == [state]
    assert back_query["code"][0]

    landing = http.get(callback, allow_redirects=False, timeout=TIMEOUT)
    assert landing.status_code == 302, landing.text
    target = urlsplit(urljoin(live_server, landing.headers["Location"]))
    assert f"{target.scheme}://{target.netloc}{target.path}" == f"{live_server}/demo/app"
    assert target.query == ""  # the token travels in the fragment only
    token = token_from(landing.headers["Location"])
    assert wechat.fake.calls_to(EXCHANGE) == 1

    checked = who(live_server, token)
    assert checked.status_code == 200, checked.text
    data = checked.json()["data"]
    assert data["kind"] == "wechat"
    assert data["student"] is True
    assert data["stuid"] == stuid
    assert "student" in data["roles"]
    assert "openid" not in data and "o_test_student" not in checked.text

    # The landing page itself is served (the demo app reads the fragment in the browser).
    page = http.get(f"{live_server}/demo/app", timeout=TIMEOUT)
    assert page.status_code == 200
    assert 'id="identity"' in page.text


def test_without_next_a_page_shows_the_token_and_roles(app, live_server, wechat, http):
    bind_student(app, "o_test_student")
    callback = callback_url(http, live_server, "o_test_student", None)

    page = http.get(callback, allow_redirects=False, timeout=TIMEOUT)

    assert page.status_code == 200, page.text
    assert page.headers["Content-Type"].startswith("text/html")
    assert "Location" not in page.headers
    shown = page.text.split('<pre id="token">', 1)[1].split("</pre>", 1)[0].strip()
    assert shown.startswith("gAAAAA")
    assert '<p id="roles">Roles: student</p>' in page.text
    assert who(live_server, shown).json()["data"]["stuid"]


def test_a_newcomer_without_binding_gets_a_token_with_no_roles(live_server, wechat, http):
    callback = callback_url(http, live_server, "o_test_newcomer", None)

    page = http.get(callback, allow_redirects=False, timeout=TIMEOUT)

    assert page.status_code == 200, page.text
    assert '<p id="roles">Roles: none yet</p>' in page.text


def test_an_allowlisted_partner_host_receives_the_token_in_the_fragment(
    app, live_server, wechat, http
):
    assert "partner.test" in app.config["SIGNIN_REDIRECT_HOSTS"]
    callback = callback_url(http, live_server, "o_test_student", "http://partner.test/app#old")

    landing = http.get(callback, allow_redirects=False, timeout=TIMEOUT)

    assert landing.status_code == 302, landing.text
    location = landing.headers["Location"]
    assert location.startswith("http://partner.test/app#token=")
    assert "#old" not in location
    assert who(live_server, token_from(location)).json()["data"]["kind"] == "wechat"


def test_a_local_next_keeps_its_query(live_server, wechat, http):
    callback = callback_url(http, live_server, "o_test_student", "/demo/app?tab=me")

    landing = http.get(callback, allow_redirects=False, timeout=TIMEOUT)

    assert landing.status_code == 302
    assert landing.headers["Location"].startswith("/demo/app?tab=me#token=gAAAAA")


# -- state: bound to the browser, single use --------------------------------------------------


def test_a_callback_from_another_browser_is_refused_before_asking_wechat(live_server, wechat):
    """Login CSRF: an attacker's own code and state, delivered to the victim's browser."""
    with requests.Session() as attacker, requests.Session() as victim:
        callback = callback_url(attacker, live_server, "o_attacker", "/demo/app")
        victim_authorize = begin(victim, live_server)  # the victim has a sign-in of its own
        assert (
            parse_qs(urlsplit(victim_authorize).query)["state"]
            != parse_qs(urlsplit(callback).query)["state"]
        )

        answer = victim.get(callback, allow_redirects=False, timeout=TIMEOUT)
        fresh = requests.get(callback, allow_redirects=False, timeout=TIMEOUT)  # no cookie at all

    assert_error_page(answer, 400)
    assert_error_page(fresh, 400)
    assert wechat.fake.calls_to(EXCHANGE) == 0


def test_a_tampered_state_is_refused_before_asking_wechat(live_server, wechat, http):
    callback = callback_url(http, live_server, "o_test_student", "/demo/app")
    url = urlsplit(callback)
    query = parse_qs(url.query)
    for bad in ("", "x", query["state"][0][:-1], query["state"][0] + "x"):
        http.cookies.clear()
        begin(http, live_server)  # a fresh, real state in this browser's session
        answer = http.get(
            f"{live_server}/signin/callback",
            params={"code": query["code"][0], "state": bad},
            allow_redirects=False,
            timeout=TIMEOUT,
        )
        assert_error_page(answer, 400)
    missing = http.get(f"{live_server}/signin/callback", allow_redirects=False, timeout=TIMEOUT)
    assert_error_page(missing, 400)
    assert wechat.fake.calls_to(EXCHANGE) == 0


def test_replaying_the_callback_is_refused(live_server, wechat, http):
    callback = callback_url(http, live_server, "o_test_student", "/demo/app")
    first = http.get(callback, allow_redirects=False, timeout=TIMEOUT)
    assert first.status_code == 302

    again = http.get(callback, allow_redirects=False, timeout=TIMEOUT)

    assert_error_page(again, 400)
    assert wechat.fake.calls_to(EXCHANGE) == 1


def test_replaying_with_the_old_session_cookie_still_gets_no_token(live_server, wechat, http):
    """The session is a signed cookie: an old copy still holds the state. The code, though,
    is single use at WeChat, so a replay with a captured cookie ends in 401, not a token."""
    callback = callback_url(http, live_server, "o_test_student", "/demo/app")
    old_cookies = http.cookies.copy()
    assert http.get(callback, allow_redirects=False, timeout=TIMEOUT).status_code == 302

    http.cookies = old_cookies
    again = http.get(callback, allow_redirects=False, timeout=TIMEOUT)

    assert again.status_code in {400, 401}
    assert_error_page(again, again.status_code)


def test_a_code_used_twice_is_refused(live_server, wechat, http):
    callback = callback_url(http, live_server, "o_test_student", "/demo/app")
    code = parse_qs(urlsplit(callback).query)["code"][0]
    assert http.get(callback, allow_redirects=False, timeout=TIMEOUT).status_code == 302

    # A new sign-in in the same browser (so the state is right), but the old code.
    state = parse_qs(urlsplit(begin(http, live_server)).query)["state"][0]
    again = http.get(
        f"{live_server}/signin/callback",
        params={"code": code, "state": state},
        allow_redirects=False,
        timeout=TIMEOUT,
    )

    assert_error_page(again, 401)
    assert wechat.fake.calls_to(EXCHANGE) == 2


def test_a_missing_or_oversized_code_is_refused_before_asking_wechat(live_server, wechat, http):
    for code in ("", "c" * 129):
        state = parse_qs(urlsplit(begin(http, live_server)).query)["state"][0]
        answer = http.get(
            f"{live_server}/signin/callback",
            params={"code": code, "state": state},
            allow_redirects=False,
            timeout=TIMEOUT,
        )
        assert_error_page(answer, 400)
    assert wechat.fake.calls_to(EXCHANGE) == 0


# -- where a sign-in may land -----------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/x",
        "//evil.example",
        "//evil.example/demo/app",
        "https://partner.test.evil.example/app",
        "https://evil.example.partner.test/app",
        "http://partner.test@evil.example/app",
        "https:evil.example",
        "/\\evil.example",
        " //evil.example",
        "javascript:alert(1)",
        "JavaScript://partner.test/%0aalert(1)",
        "data:text/html,<script>alert(1)</script>",
        "demo/app",
        "http://partner.test/" + "a" * 2000,
        "/demo/app\r\nSet-Cookie: x=1",
        "/demo/app\t",
    ],
)
def test_a_next_outside_the_allowlist_is_refused_before_wechat(live_server, wechat, http, target):
    response = http.get(
        f"{live_server}/signin", params={"next": target}, allow_redirects=False, timeout=TIMEOUT
    )

    assert_error_page(response, 400)
    assert "not allowed" in response.text
    assert wechat.url not in response.text
    assert wechat.fake.calls_to(AUTHORIZE) == 0


# -- WeChat faults during the exchange --------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "errcode", "status"),
    [
        ("http500", None, 502),
        ("timeout", None, 502),
        ("html", None, 502),
        ("errcode", -1, 503),
        ("errcode", 40013, 502),
    ],
)
def test_wechat_faults_show_a_clear_error_page_quickly(
    live_server, wechat, http, monkeypatch, mode, errcode, status
):
    monkeypatch.setattr(wechat.fake, "timeout_sleep", 2.0)  # the app reads for 1.5 s in tests
    callback = callback_url(http, live_server, "o_test_student", "/demo/app")
    wechat.fake.fail(EXCHANGE, mode, errcode)

    started = time.monotonic()
    answer = http.get(callback, allow_redirects=False, timeout=TIMEOUT)
    elapsed = time.monotonic() - started

    assert_error_page(answer, status)
    assert elapsed < 3.0
    assert wechat.fake.calls_to(EXCHANGE) == 1
    for leaked in ("system error", "invalid appid", "Internal Server Error", "busy</html>"):
        assert leaked not in answer.text  # WeChat's own words are not echoed
    # The fault was for one call: signing in again from the start works.
    again = http.get(
        callback_url(http, live_server, "o_test_student", "/demo/app"),
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert again.status_code == 302, again.text
    assert token_from(again.headers["Location"])


# -- cookies and logs -------------------------------------------------------------------------


def test_the_session_cookie_is_httponly_and_samesite_lax(live_server, wechat, http):
    response = http.get(
        f"{live_server}/signin", params={"next": "/demo/app"}, allow_redirects=False
    )

    cookie = response.headers["Set-Cookie"]
    attributes = {part.strip().split("=", 1)[0].lower() for part in cookie.split(";")}
    assert "httponly" in attributes
    assert "samesite=lax" in cookie.lower()
    assert default("SESSION_COOKIE_SAMESITE") == "Lax"
    assert default("SESSION_COOKIE_SECURE") is True


@pytest.fixture
def app_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Records of the `berater` loggers (which do not propagate to the root logger)."""
    logger = logging.getLogger("berater")
    logger.addHandler(caplog.handler)
    caplog.set_level(logging.INFO, logger="berater.request")
    try:
        yield caplog
    finally:
        logger.removeHandler(caplog.handler)


def test_neither_token_nor_code_appears_in_the_request_log(live_server, wechat, http, app_logs):
    callback = callback_url(http, live_server, "o_test_student", "/demo/app")
    code = parse_qs(urlsplit(callback).query)["code"][0]
    state = parse_qs(urlsplit(callback).query)["state"][0]
    landing = http.get(callback, allow_redirects=False, timeout=TIMEOUT)
    token = token_from(landing.headers["Location"])
    assert who(live_server, token).status_code == 200
    page = http.get(callback_url(http, live_server, "o_test_student", None), timeout=TIMEOUT)
    assert page.status_code == 200

    lines = [r.getMessage() for r in app_logs.records if r.name == "berater.request"]
    assert any("/signin/callback 302" in line for line in lines), lines
    assert any("/api/token 200" in line for line in lines), lines
    ours = "\n".join(r.getMessage() for r in app_logs.records if r.name.startswith("berater"))
    for secret in (token, code, state):
        assert secret not in ours
    # The token is never even sent to a server (fragment, header): no log line of any logger,
    # the test server's own access log included, can hold it.
    assert token not in app_logs.text
    assert "gAAAAA" not in app_logs.text
