"""The landing by type, `/?type=student|candidate&url=<target>`, with the test client: which
targets and types are allowed, where a person goes after WeChat (the registration page when
the binding `type` asks for is missing), and a refreshed callback or a code used twice
restarting the sign-in once instead of failing.

WeChat's page is played by the stand-in's `issue_code`, as a person picking an openid would.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from berater.db import db
from tests import factories

pytestmark = pytest.mark.backends

AUTHORIZE = "/connect/oauth2/authorize"
EXCHANGE = "/sns/oauth2/access_token"
BASE = "http://localhost"  # the testing SERVICE_BASE_URL


def land(client: FlaskClient, kind: str | None, url: str | None = None):
    values = {k: v for k, v in (("type", kind), ("url", url)) if v is not None}
    return client.get(f"/?{urlencode(values)}")


def state_of(response) -> str:
    assert response.status_code == 302, response.get_data(as_text=True)
    location = urlsplit(response.headers["Location"])
    assert location.path == AUTHORIZE
    return parse_qs(location.query)["state"][0]


def come_back(client: FlaskClient, wechat, state: str, openid: str, code: str | None = None):
    """WeChat sends the browser back to the callback with a code for `openid`."""
    code = code or wechat.fake.issue_code(openid)
    return client.get(f"/signin/callback?{urlencode({'code': code, 'state': state})}")


def split(location: str) -> tuple[str, dict[str, list[str]], str]:
    parts = urlsplit(location)
    return parts.path, parse_qs(parts.query), parts.fragment


def assert_error_page(response, status: int = 400) -> str:
    page = response.get_data(as_text=True)
    assert response.status_code == status, page
    assert response.mimetype == "text/html"
    assert "Location" not in response.headers
    assert 'id="hint"' in page and "token=" not in page
    return page


def bind(app: Flask, openid: str, *kinds: str) -> None:
    with app.app_context():
        if "student" in kinds:
            factories.student(openid)
        if "candidate" in kinds:
            factories.candidate(openid)
        db.session.commit()


# -- types and targets ------------------------------------------------------------------------


def test_the_landing_starts_wechat_with_a_state_bound_to_this_browser(app, client, wechat):
    answer = land(client, "student", "/demo/app")

    location = urlsplit(answer.headers["Location"])
    assert f"{location.scheme}://{location.netloc}" == wechat.url
    query = parse_qs(location.query)
    assert query["redirect_uri"] == [f"{BASE}/signin/callback"]
    assert query["scope"] == ["snsapi_base"]
    state = state_of(answer)
    assert len(state) >= 32
    # Another browser cannot use this browser's state.
    assert_error_page(come_back(app.test_client(), wechat, state, "o_other"))
    assert wechat.fake.calls_to(EXCHANGE) == 0


@pytest.mark.parametrize(
    "query",
    [{"url": "/demo/app"}, {"type": "teacher"}, {"type": ""}, {"type": "Student"},
     {"type": "admin", "url": "/demo/app"}],
)  # fmt: skip
def test_a_missing_or_unknown_type_gets_an_error_page(client, wechat, query):
    page = assert_error_page(client.get(f"/?{urlencode(query)}"))
    assert "身份类型" in page
    assert wechat.url not in page


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/x",
        "//evil.example/demo/app",
        "https://partner.test.evil.example/app",
        "http://partner.test@evil.example/app",
        "https:evil.example",
        "/\\evil.example",
        "javascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "demo/app",
        "http://partner.test/" + "a" * 2000,
        "/demo/app\r\nSet-Cookie: x=1",
    ],
)
def test_a_target_outside_the_allowlist_gets_an_error_page_never_a_redirect(client, wechat, target):
    page = assert_error_page(land(client, "student", target))
    assert "不在允许的范围内" in page and "not allowed" in page
    assert wechat.url not in page


@pytest.mark.parametrize(
    "target", ["/demo/app?tab=me", "http://partner.test/app", "https://localhost:8443/x", ""]
)
def test_a_path_here_or_an_allowlisted_host_is_allowed(client, wechat, target):
    assert state_of(land(client, "candidate", target))


# -- where a person goes ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "bound_as", "target", "path", "query"),
    [
        ("student", ["student"], "http://partner.test/app", "/app", {}),
        ("candidate", ["candidate"], "/demo/app", "/demo/app", {}),
        ("student", [], "http://partner.test/app", "/register/student",
         {"next": ["http://partner.test/app"]}),
        ("student", ["candidate"], "/demo/app", "/register/student", {"next": ["/demo/app"]}),
        ("candidate", ["student"], "/demo/app", "/register/candidate", {"next": ["/demo/app"]}),
        ("student", ["student"], "", "/me", {}),
        ("candidate", [], "", "/register/candidate", {}),
    ],
)  # fmt: skip
def test_after_wechat_the_binding_decides_where_to_go(
    app, client, wechat, kind, bound_as, target, path, query
):
    bind(app, "o_person", *bound_as)
    state = state_of(land(client, kind, target))

    answer = come_back(client, wechat, state, "o_person")

    assert answer.status_code == 302
    got_path, got_query, fragment = split(answer.headers["Location"])
    assert (got_path, got_query) == (path, query)
    token = fragment.removeprefix("token=")
    assert fragment.startswith("token=") and token.startswith("gAAAAA")
    checked = client.get("/api/token", headers={"Authorization": f"Bearer {token}"})
    assert checked.get_json()["data"][kind] is (kind in bound_as)


# -- refreshes and codes used twice -----------------------------------------------------------


def test_a_refreshed_callback_restarts_the_sign_in_once(app, client, wechat):
    bind(app, "o_student", "student")
    state = state_of(land(client, "student", "/demo/app"))
    code = wechat.fake.issue_code("o_student")
    first = come_back(client, wechat, state, "o_student", code)
    assert first.headers["Location"].startswith("/demo/app#token=")

    refreshed = come_back(client, wechat, state, "o_student", code)

    again = state_of(refreshed)  # to WeChat with a fresh state, not an error page
    assert again != state
    assert wechat.fake.calls_to(EXCHANGE) == 1  # the used code was not sent again
    # The same refresh once more, before the restarted sign-in came back: no second restart.
    assert_error_page(come_back(client, wechat, state, "o_student", code))
    # The restarted sign-in still completes, and may restart again after that.
    landed = come_back(client, wechat, again, "o_student")
    assert landed.headers["Location"].startswith("/demo/app#token=")
    assert state_of(come_back(client, wechat, again, "o_student"))


def test_a_code_used_twice_restarts_the_sign_in_once(app, client, wechat):
    bind(app, "o_student", "student")
    code = wechat.fake.issue_code("o_student")
    first = come_back(client, wechat, state_of(land(client, "student", "/demo/app")), "", code)
    assert first.status_code == 302

    # A new landing in the same browser, back with the old code: WeChat refuses it.
    restarted = come_back(client, wechat, state_of(land(client, "student", "/demo/app")), "", code)
    fresh_state = state_of(restarted)
    assert wechat.fake.calls_to(EXCHANGE) == 2

    # The restarted sign-in brings the used code once more: now it is an error page.
    page = assert_error_page(come_back(client, wechat, fresh_state, "", code), 401)
    assert "登录码无效或已经用过" in page


def test_a_plain_sign_in_does_not_restart(app, client, wechat):
    """`/signin?next=` keeps its behaviour: a replayed callback is an error page, also after
    a landing by type in the same browser."""
    bind(app, "o_student", "student")
    come_back(client, wechat, state_of(land(client, "student", "/demo/app")), "o_student")
    state = state_of(client.get("/signin?next=/demo/app"))
    code = wechat.fake.issue_code("o_student")
    assert come_back(client, wechat, state, "", code).status_code == 302

    assert_error_page(come_back(client, wechat, state, "", code))


@pytest.mark.parametrize("start", ["/signin?next=/demo/app", "/?type=student&url=/demo/app"])
def test_a_sign_in_refused_by_a_wechat_failure_restarts_on_reload(app, client, wechat, start):
    """WeChat failed while the code was exchanged: the error page says to try again, and
    reloading it (the same callback URL) goes back to WeChat for a fresh code, once."""
    bind(app, "o_student", "student")
    state = state_of(client.get(start))
    code = wechat.fake.issue_code("o_student")
    wechat.fake.fail(EXCHANGE, "http500")
    page = assert_error_page(come_back(client, wechat, state, "", code), 502)
    assert "微信暂时没有响应" in page

    again = state_of(come_back(client, wechat, state, "", code))  # the reload
    assert again != state
    landed = come_back(client, wechat, again, "o_student")
    assert landed.headers["Location"].startswith("/demo/app#token=")
    if start.startswith("/signin"):  # a landing by type may restart after each landing
        assert_error_page(come_back(client, wechat, state, "", code))  # not a second time


def test_a_stale_callback_without_a_landing_is_an_error_page(client, wechat):
    assert_error_page(come_back(client, wechat, "x" * 32, "o_student"))
    assert wechat.fake.calls_to(EXCHANGE) == 0


def test_the_restart_keeps_the_target_checked(make_app, wechat):
    """A landing remembered in the session is checked again when it restarts: a host taken
    off the allowlist meanwhile is not landed on."""
    app = make_app()
    client = app.test_client()
    state = state_of(land(client, "student", "http://partner.test/app"))
    come_back(client, wechat, state, "o_newcomer")
    app.config["SIGNIN_REDIRECT_HOSTS"] = ["localhost"]

    assert_error_page(come_back(client, wechat, state, "o_newcomer"))


# -- the registration pages check their target too --------------------------------------------


@pytest.mark.parametrize("page", ["/register/student", "/register/candidate"])
def test_a_registration_page_refuses_a_target_outside_the_allowlist(client, page):
    answer = client.get(f"{page}?next=https://evil.example/")
    assert_error_page(answer)
    shown = client.get(f"{page}?next=/demo/app").get_data(as_text=True)
    assert 'data-next="/demo/app"' in shown
    assert 'data-landing="/?type=' in shown
