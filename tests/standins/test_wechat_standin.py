"""Tests for the WeChat stand-in, over real HTTP on loopback."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from standins.wechat import FakeWeChat, RunningWeChat, running

APPID = "wx_test_appid"
SECRET = "test-secret"
SNS = "/sns/oauth2/access_token"
TOKEN = "/cgi-bin/token"
AUTHORIZE = "/connect/oauth2/authorize"


@pytest.fixture
def fake() -> FakeWeChat:
    return FakeWeChat(appid=APPID, secret=SECRET, timeout_sleep=1.0)


@pytest.fixture
def server(fake: FakeWeChat) -> Iterator[RunningWeChat]:
    with running(fake) as srv:
        yield srv


def exchange(server: RunningWeChat, code: str, **overrides: str) -> dict:
    params = {"appid": APPID, "secret": SECRET, "code": code, "grant_type": "authorization_code"}
    params.update(overrides)
    resp = requests.get(server.url + SNS, params=params, timeout=5)
    assert resp.status_code == 200
    return resp.json()


def get_token(server: RunningWeChat, **overrides: str) -> requests.Response:
    params = {"grant_type": "client_credential", "appid": APPID, "secret": SECRET}
    params.update(overrides)
    return requests.get(server.url + TOKEN, params=params, timeout=5)


def authorize_form(**overrides: str) -> dict[str, str]:
    form = {
        "appid": APPID,
        "redirect_uri": "https://app.example/auth/callback?next=%2Fhome&lang=zh",
        "scope": "snsapi_base",
        "state": "st-123",
    }
    form.update(overrides)
    return form


def test_running_url_has_no_trailing_slash_and_serves(server: RunningWeChat) -> None:
    assert server.url.startswith("http://127.0.0.1:")
    assert not server.url.endswith("/")
    assert int(server.url.rsplit(":", 1)[1]) > 0
    assert requests.get(server.url + "/_standin/calls", timeout=5).json() == {}


def test_stop_closes_the_socket(fake: FakeWeChat) -> None:
    srv = running(fake)
    url = srv.url
    srv.stop()
    srv.stop()  # idempotent
    with pytest.raises(requests.ConnectionError):
        requests.get(url + "/_standin/calls", timeout=1)


def test_code_exchange_returns_openid(server: RunningWeChat, fake: FakeWeChat) -> None:
    body = exchange(server, fake.issue_code("o_dev_student"))
    assert body["openid"] == "o_dev_student"
    assert body["expires_in"] == 7200
    assert body["scope"] == "snsapi_base"
    assert body["access_token"] and body["refresh_token"]
    assert "errcode" not in body


def test_code_is_single_use(server: RunningWeChat, fake: FakeWeChat) -> None:
    code = fake.issue_code("o_dev_admin")
    assert exchange(server, code)["openid"] == "o_dev_admin"
    assert exchange(server, code) == {"errcode": 40163, "errmsg": "code been used"}


def test_unknown_code_is_invalid(server: RunningWeChat) -> None:
    assert exchange(server, "no-such-code") == {"errcode": 40029, "errmsg": "invalid code"}
    assert exchange(server, "")["errcode"] == 40029


def test_expired_code_is_invalid() -> None:
    fake = FakeWeChat(appid=APPID, secret=SECRET, code_ttl=0.05)
    with running(fake) as srv:
        code = fake.issue_code("o_dev_student")
        time.sleep(0.15)
        assert exchange(srv, code) == {"errcode": 40029, "errmsg": "invalid code"}


def test_wrong_secret_and_appid_are_rejected(server: RunningWeChat, fake: FakeWeChat) -> None:
    code = fake.issue_code("o_dev_student")
    assert exchange(server, code, secret="nope") == {
        "errcode": 40125,
        "errmsg": "invalid appsecret",
    }
    assert exchange(server, code, appid="wx_other") == {"errcode": 40013, "errmsg": "invalid appid"}
    assert exchange(server, code, grant_type="client_credential")["errcode"] == 40002
    # Rejected requests must not consume the code.
    assert exchange(server, code)["openid"] == "o_dev_student"


def test_cgi_token_success(server: RunningWeChat, fake: FakeWeChat) -> None:
    first, second = get_token(server).json(), get_token(server).json()
    assert first["expires_in"] == 7200
    assert len(first["access_token"]) >= 32
    assert first["access_token"] != second["access_token"]
    assert fake.is_access_token(first["access_token"])
    assert not fake.is_access_token("forged")


def test_cgi_token_errors(server: RunningWeChat) -> None:
    resp = get_token(server, secret="wrong")
    assert resp.status_code == 200
    assert resp.json() == {"errcode": 40125, "errmsg": "invalid appsecret"}
    assert get_token(server, appid="wx_other").json()["errcode"] == 40013
    assert get_token(server, grant_type="password").json()["errcode"] == 40002


def test_authorize_page_renders_form_with_state(server: RunningWeChat) -> None:
    params = authorize_form(state="hello-state")
    params["response_type"] = "code"
    resp = requests.get(server.url + AUTHORIZE, params=params, timeout=5)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("text/html")
    assert "charset=utf-8" in resp.headers["Content-Type"].lower()
    assert '<form method="post"' in resp.text
    assert 'value="hello-state"' in resp.text
    for openid in ("o_dev_student", "o_dev_candidate", "o_dev_admin", "o_dev_newcomer"):
        assert f'value="{openid}"' in resp.text
    # Enter in the text box submits the first button, so the typed openid must come first.
    assert resp.text.index('name="openid"') < resp.text.index('name="preset"')


def test_authorize_post_redirects_with_code_and_state(
    server: RunningWeChat, fake: FakeWeChat
) -> None:
    resp = requests.post(
        server.url + AUTHORIZE,
        data=authorize_form(preset="o_dev_candidate"),
        allow_redirects=False,
        timeout=5,
    )
    assert resp.status_code == 302
    location = urlsplit(resp.headers["Location"])
    assert (location.scheme, location.netloc, location.path) == (
        "https",
        "app.example",
        "/auth/callback",
    )
    query = parse_qs(location.query)
    assert query["next"] == ["/home"] and query["lang"] == ["zh"]
    assert query["state"] == ["st-123"]
    assert exchange(server, query["code"][0])["openid"] == "o_dev_candidate"


def test_authorize_post_accepts_typed_openid(server: RunningWeChat) -> None:
    resp = requests.post(
        server.url + AUTHORIZE,
        data=authorize_form(openid="  o_typed-User_9  "),
        allow_redirects=False,
        timeout=5,
    )
    assert resp.status_code == 302
    code = parse_qs(urlsplit(resp.headers["Location"]).query)["code"][0]
    assert exchange(server, code)["openid"] == "o_typed-User_9"


@pytest.mark.parametrize("openid", ["", "bad openid", "x" * 65, "<script>"])
def test_authorize_post_rejects_invalid_openid(server: RunningWeChat, openid: str) -> None:
    resp = requests.post(
        server.url + AUTHORIZE, data=authorize_form(openid=openid), allow_redirects=False, timeout=5
    )
    assert resp.status_code == 400
    assert "<script>" not in resp.text
    assert server.fake.calls == {AUTHORIZE: 1}


@pytest.mark.parametrize(
    "redirect_uri",
    ["", "/relative/path", "javascript:alert(1)", "ftp://files.example/x", "https://"],
)
def test_authorize_rejects_bad_redirect_uri(server: RunningWeChat, redirect_uri: str) -> None:
    params = authorize_form(redirect_uri=redirect_uri)
    page = requests.get(server.url + AUTHORIZE, params=params, timeout=5)
    assert page.status_code == 400
    assert page.headers["Content-Type"].startswith("text/html")
    posted = requests.post(
        server.url + AUTHORIZE,
        data={**params, "preset": "o_dev_student"},
        allow_redirects=False,
        timeout=5,
    )
    assert posted.status_code == 400
    assert "Location" not in posted.headers


def test_authorize_rejects_wrong_appid(server: RunningWeChat) -> None:
    params = authorize_form(appid="wx_other")
    assert requests.get(server.url + AUTHORIZE, params=params, timeout=5).status_code == 400
    resp = requests.post(
        server.url + AUTHORIZE,
        data={**params, "preset": "o_dev_student"},
        allow_redirects=False,
        timeout=5,
    )
    assert resp.status_code == 400


def test_authorize_page_escapes_hostile_state(server: RunningWeChat) -> None:
    hostile = '"><script>alert(1)</script>'
    params = authorize_form(state=hostile)
    resp = requests.get(server.url + AUTHORIZE, params=params, timeout=5)
    assert resp.status_code == 200
    assert "<script>" not in resp.text
    assert "&lt;script&gt;" in resp.text
    assert "&quot;&gt;" in resp.text
    # The state still survives the round trip unchanged.
    posted = requests.post(
        server.url + AUTHORIZE,
        data={**params, "preset": "o_dev_student"},
        allow_redirects=False,
        timeout=5,
    )
    assert parse_qs(urlsplit(posted.headers["Location"]).query)["state"] == [hostile]


def test_call_counts(server: RunningWeChat, fake: FakeWeChat) -> None:
    get_token(server)
    get_token(server, secret="wrong")
    exchange(server, "unknown")
    assert fake.calls_to(TOKEN) == 2
    assert fake.calls_to(SNS) == 1
    assert fake.calls_to("/never") == 0
    assert fake.calls == {TOKEN: 2, SNS: 1}
    fake.reset()
    assert fake.calls == {}


def test_reset_forgets_codes(server: RunningWeChat, fake: FakeWeChat) -> None:
    code = fake.issue_code("o_dev_student")
    fake.reset()
    assert exchange(server, code)["errcode"] == 40029


def test_fault_errcode_is_consumed_once(server: RunningWeChat, fake: FakeWeChat) -> None:
    fake.fail(TOKEN, "errcode", errcode=-1)
    resp = get_token(server)
    assert resp.status_code == 200
    assert resp.json() == {"errcode": -1, "errmsg": "system error"}
    assert "access_token" in get_token(server).json()
    assert fake.calls_to(TOKEN) == 2


def test_fault_http500(server: RunningWeChat, fake: FakeWeChat) -> None:
    fake.fail(SNS, "http500")
    code = fake.issue_code("o_dev_student")
    resp = requests.get(
        server.url + SNS,
        params={"appid": APPID, "secret": SECRET, "code": code, "grant_type": "authorization_code"},
        timeout=5,
    )
    assert resp.status_code == 500
    assert resp.headers["Content-Type"].startswith("text/plain")
    # The failed call did not consume the code.
    assert exchange(server, code)["openid"] == "o_dev_student"


def test_fault_html(server: RunningWeChat, fake: FakeWeChat) -> None:
    fake.fail(TOKEN, "html")
    resp = get_token(server)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("text/html")
    assert resp.text == "<html>busy</html>"
    with pytest.raises(ValueError):
        resp.json()


def test_fault_timeout(server: RunningWeChat, fake: FakeWeChat) -> None:
    fake.fail(TOKEN, "timeout")
    params = {"grant_type": "client_credential", "appid": APPID, "secret": SECRET}
    started = time.monotonic()
    with pytest.raises(requests.Timeout):
        requests.get(server.url + TOKEN, params=params, timeout=0.3)
    assert time.monotonic() - started < 0.9
    assert "access_token" in get_token(server).json()


def test_faults_are_consumed_in_order(server: RunningWeChat, fake: FakeWeChat) -> None:
    fake.fail(TOKEN, "errcode", errcode=40001, times=2)
    fake.fail(TOKEN, "html")
    assert get_token(server).json() == {"errcode": 40001, "errmsg": "invalid credential"}
    assert get_token(server).json()["errcode"] == 40001
    assert get_token(server).text == "<html>busy</html>"
    assert "access_token" in get_token(server).json()


def test_fault_until_cleared(server: RunningWeChat, fake: FakeWeChat) -> None:
    fake.fail(TOKEN, "errcode", errcode=-1, times=0)
    for _ in range(3):
        assert get_token(server).json()["errcode"] == -1
    fake.clear_faults()
    assert "access_token" in get_token(server).json()


def test_fault_only_affects_its_path(server: RunningWeChat, fake: FakeWeChat) -> None:
    fake.fail(SNS, "http500", times=None)
    assert get_token(server).status_code == 200
    assert "access_token" in get_token(server).json()


def test_fail_rejects_bad_arguments(fake: FakeWeChat) -> None:
    with pytest.raises(ValueError):
        fake.fail(TOKEN, "explode")
    with pytest.raises(ValueError):
        fake.fail("/_standin/calls", "html")
    with pytest.raises(ValueError):
        fake.fail(TOKEN, "html", times=-1)


def test_control_endpoints(server: RunningWeChat, fake: FakeWeChat) -> None:
    url = server.url + "/_standin"
    code = requests.post(url + "/code", json={"openid": "o_dev_newcomer"}, timeout=5).json()["code"]
    assert exchange(server, code)["openid"] == "o_dev_newcomer"
    assert requests.post(url + "/code", json={"openid": "bad id"}, timeout=5).status_code == 400

    ok = requests.post(
        url + "/fail", json={"path": TOKEN, "mode": "errcode", "errcode": 40001}, timeout=5
    )
    assert ok.status_code == 200 and ok.json() == {"ok": True}
    assert get_token(server).json()["errcode"] == 40001
    bad = requests.post(url + "/fail", json={"path": TOKEN, "mode": "nope"}, timeout=5)
    assert bad.status_code == 400

    requests.post(url + "/fail", json={"path": TOKEN, "mode": "html", "times": None}, timeout=5)
    assert get_token(server).text == "<html>busy</html>"
    # Control endpoints are not counted.
    assert requests.get(url + "/calls", timeout=5).json() == {SNS: 1, TOKEN: 2}

    assert requests.post(url + "/reset", timeout=5).json() == {"ok": True}
    assert requests.get(url + "/calls", timeout=5).json() == {}
    assert "access_token" in get_token(server).json()  # faults cleared by reset
    assert fake.calls_to(TOKEN) == 1


def test_concurrent_requests_are_counted(server: RunningWeChat, fake: FakeWeChat) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: get_token(server).status_code, range(40)))
    assert results == [200] * 40
    assert fake.calls_to(TOKEN) == 40


def test_module_main_serves_and_prints_url() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "standins.wechat",
            "--port",
            "0",
            "--appid",
            APPID,
            "--secret",
            SECRET,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        url = line.strip().rsplit(" ", 1)[-1]
        assert url.startswith("http://127.0.0.1:")
        resp = requests.get(
            url + TOKEN,
            params={"grant_type": "client_credential", "appid": APPID, "secret": SECRET},
            timeout=5,
        )
        assert "access_token" in resp.json()
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=5)
    assert SECRET not in stderr
    assert TOKEN in stderr  # the request was logged, without its query string


# -- account API (standins/wechat_api.py) ------------------------------------------------

STABLE = "/cgi-bin/stable_token"
MENU_CREATE = "/cgi-bin/menu/create"


def stable(server: RunningWeChat, **overrides: object) -> dict:
    body = {"grant_type": "client_credential", "appid": APPID, "secret": SECRET}
    body.update(overrides)
    return requests.post(server.url + STABLE, json=body, timeout=5).json()


def create_menu(server: RunningWeChat, menu: object, token: str) -> dict:
    params = {"access_token": token}
    return requests.post(server.url + MENU_CREATE, params=params, json=menu, timeout=5).json()


def test_stable_token_stays_the_same_until_forced(server: RunningWeChat, fake: FakeWeChat):
    first, second = stable(server), stable(server)
    assert first["access_token"] == second["access_token"]
    assert 7100 < first["expires_in"] <= 7200
    forced = stable(server, force_refresh=True)
    assert forced["access_token"] != first["access_token"]
    assert not fake.is_access_token(first["access_token"])
    assert stable(server, secret="wrong")["errcode"] == 40125
    assert stable(server, appid="wx_other")["errcode"] == 40013
    assert stable(server, grant_type="password")["errcode"] == 40002
    assert fake.calls_to(STABLE) == 6


def test_api_checks_the_access_token() -> None:
    fake = FakeWeChat(appid=APPID, secret=SECRET, token_ttl=0.2)
    with running(fake) as server:
        menu = {"button": [{"type": "click", "name": "a", "key": "A"}]}
        assert create_menu(server, menu, "")["errcode"] == 41001
        assert create_menu(server, menu, "forged")["errcode"] == 40001
        token = stable(server)["access_token"]
        assert create_menu(server, menu, token) == {"errcode": 0, "errmsg": "ok"}
        time.sleep(0.3)
        assert create_menu(server, menu, token)["errcode"] == 42001
        assert stable(server)["access_token"] != token  # an expired token is replaced


GETTICKET = "/cgi-bin/ticket/getticket"


def getticket(server: RunningWeChat, token: str, kind: str = "jsapi") -> dict:
    params = {"access_token": token, "type": kind}
    return requests.get(server.url + GETTICKET, params=params, timeout=5).json()


def test_getticket_hands_out_one_ticket_while_it_is_valid(
    server: RunningWeChat, fake: FakeWeChat
) -> None:
    token = stable(server)["access_token"]
    first = getticket(server, token)
    assert set(first) == {"errcode", "errmsg", "ticket", "expires_in"}
    assert (first["errcode"], first["errmsg"], first["expires_in"]) == (0, "ok", 7200)
    assert getticket(server, token)["ticket"] == first["ticket"]  # the same, as WeChat does
    assert fake.jsapi_ticket == first["ticket"]
    fake.revoke_tickets()
    assert fake.jsapi_ticket is None
    assert getticket(server, token)["ticket"] != first["ticket"]
    assert fake.calls_to(GETTICKET) == 3


def test_getticket_checks_the_access_token_and_the_type() -> None:
    fake = FakeWeChat(appid=APPID, secret=SECRET, token_ttl=0.2)
    with running(fake) as server:
        assert getticket(server, "")["errcode"] == 41001
        assert getticket(server, "forged")["errcode"] == 40001
        token = stable(server)["access_token"]
        assert getticket(server, token, kind="wx_card")["errcode"] == 40097
        ticket = getticket(server, token)
        assert ticket["errcode"] == 0
        assert ticket["expires_in"] == 1  # the ticket lives as long as the token here
        time.sleep(0.3)
        assert getticket(server, token)["errcode"] == 42001
        assert fake.jsapi_ticket is None  # expired


def test_the_stand_in_js_sdk_checks_a_signature_on_its_own(
    server: RunningWeChat, fake: FakeWeChat
) -> None:
    import hashlib

    script = requests.get(server.url + "/open/js/jweixin-1.6.0.js", timeout=5)
    assert script.status_code == 200
    assert "window.wx" in script.text
    ticket = getticket(server, stable(server)["access_token"])["ticket"]
    url = "https://partner.test/app?x=1"
    string1 = f"jsapi_ticket={ticket}&noncestr=abc&timestamp=1700000000&url={url}"
    config = {
        "appId": APPID,
        "timestamp": 1700000000,
        "nonceStr": "abc",
        "signature": hashlib.sha1(string1.encode()).hexdigest(),  # noqa: S324 - WeChat's
    }

    def verify(body: dict) -> requests.Response:
        # As the stand-in JS-SDK sends it: text/plain, from a page on another origin.
        data = json.dumps(body).encode()
        return requests.post(server.url + "/_standin/jssdk/verify", data=data, timeout=5)

    answer = verify({**config, "url": url + "#section"})
    assert answer.json() == {"errMsg": "config:ok"}
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    assert verify({**config, "url": url + "&y=2"}).json()["errMsg"] == "config:invalid signature"
    assert verify({**config, "url": url, "appId": "wx_other"}).json()["errMsg"] == (
        "config:invalid signature"
    )
    assert verify({**config, "url": url, "nonceStr": "abd"}).json()["errMsg"] == (
        "config:invalid signature"
    )
    fake.revoke_tickets()
    assert verify({**config, "url": url}).json()["errMsg"] == "config:invalid signature"
    assert verify({"url": 1}).status_code == 400


@pytest.mark.parametrize(
    ("menu", "errcode"),
    [
        ({"button": []}, 40016),
        ({"button": [{"type": "click", "name": f"b{i}", "key": "K"} for i in range(4)]}, 40016),
        ({"button": [{"type": "tap", "name": "a", "key": "K"}]}, 40017),
        ({"button": [{"type": "click", "name": "六个汉字名字", "key": "K"}]}, 40018),
        ({"button": [{"type": "click", "name": "a", "key": "K" * 129}]}, 40019),
        ({"button": [{"type": "view", "name": "a", "url": "https://x/" + "a" * 1024}]}, 40020),
        ({"button": [{"type": "view", "name": "a", "url": "javascript:alert(1)"}]}, 40055),
        (
            {
                "button": [
                    {
                        "name": "a",
                        "sub_button": [{"type": "click", "name": "s", "key": "K"}] * 6,
                    }
                ]
            },
            40023,
        ),
        (
            {
                "button": [
                    {"name": "a", "sub_button": [{"type": "click", "name": "长" * 21, "key": "K"}]}
                ]
            },
            40025,
        ),
        (
            {
                "button": [
                    {"name": "a", "sub_button": [{"type": "view", "name": "s", "url": "ftp://x"}]}
                ]
            },
            40054,
        ),
        ([1, 2], 47001),
    ],
)
def test_menu_create_validates_like_wechat(server: RunningWeChat, menu: object, errcode: int):
    token = stable(server)["access_token"]
    assert create_menu(server, menu, token)["errcode"] == errcode
    assert server.fake.menu is None


def test_menu_get_and_delete(server: RunningWeChat, fake: FakeWeChat) -> None:
    token = stable(server)["access_token"]
    params = {"access_token": token}
    get = server.url + "/cgi-bin/menu/get"
    assert requests.get(get, params=params, timeout=5).json()["errcode"] == 46003
    menu = {"button": [{"type": "click", "name": "四个汉字", "key": "K"}]}
    assert create_menu(server, menu, token)["errcode"] == 0
    assert requests.get(get, params=params, timeout=5).json() == {"menu": menu}
    requests.get(server.url + "/cgi-bin/menu/delete", params=params, timeout=5)
    assert fake.menu is None


def test_messages_are_recorded_or_refused(server: RunningWeChat, fake: FakeWeChat) -> None:
    params = {"access_token": stable(server)["access_token"]}
    custom = server.url + "/cgi-bin/message/custom/send"
    template = server.url + "/cgi-bin/message/template/send"
    text = {"touser": "o_a", "msgtype": "text", "text": {"content": "你好"}}
    assert requests.post(custom, params=params, json=text, timeout=5).json()["errcode"] == 0
    sent = requests.post(
        template, params=params, json={"touser": "o_a", "template_id": "T", "data": {}}, timeout=5
    ).json()
    assert sent["errcode"] == 0 and isinstance(sent["msgid"], int)
    assert [m["kind"] for m in fake.sent] == ["custom", "template"]
    bad_type = {**text, "msgtype": "image"}
    assert requests.post(custom, params=params, json=bad_type, timeout=5).json()["errcode"] == 40008
    no_template = {"touser": "o_a", "data": {}}
    answer = requests.post(template, params=params, json=no_template, timeout=5).json()
    assert answer["errcode"] == 40037
    fake.refuse("o_a", 45015)
    assert requests.post(custom, params=params, json=text, timeout=5).json()["errcode"] == 45015
    with pytest.raises(ValueError):
        fake.refuse("o_a", 40001)
    fake.reset()
    assert fake.sent == []
