"""JS-SDK signatures (`GET /api/wechat/jssdk`) and the jsapi_ticket they are made with,
kept in the store like the access token, from the stand-in WeChat over real sockets."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask

from berater.errors import ServiceUnavailable, UpstreamError
from berater.ext.wechat import keeper, ticket
from berater.extensions import store
from berater.wechat.services import signature
from standins.wechat import RunningWeChat
from tests.helpers import bearer, token_for

pytestmark = pytest.mark.backends

VECTORS = json.loads(
    (Path(__file__).parent.parent / "fixtures" / "wechat" / "jssdk_signature.json").read_text()
)
GETTICKET = "/cgi-bin/ticket/getticket"
STABLE = "/cgi-bin/stable_token"
APP_HEADER = {"Authorization": "Bearer face dev-face-app-token"}
PAGE = "https://partner.test/photo/pick?step=2&lang=zh"


@pytest.mark.parametrize("case", VECTORS["cases"], ids=lambda case: case["url"])
def test_the_signature_matches_wechats_published_example(case: dict[str, Any]) -> None:
    assert (
        signature(case["jsapi_ticket"], case["noncestr"], case["timestamp"], case["url"])
        == (case["signature"])
    )


def test_the_published_example_is_the_one_the_issue_names() -> None:
    case = VECTORS["cases"][0]
    assert case["url"] == "http://mp.weixin.qq.com?params=value"
    assert case["signature"] == "0f9de62fce790f9a083d5c99e95740ceb90c27ed"


def jssdk(client, url: str, headers: dict[str, str] | None = None, **kwargs: Any):
    return client.get(
        "/api/wechat/jssdk", query_string={"url": url}, headers=headers or {}, **kwargs
    )


def assert_signed_for(data: dict[str, Any], url: str, wechat: RunningWeChat) -> None:
    """The answer is what wx.config needs and verifies against WeChat's current ticket."""
    assert set(data) == {"appId", "timestamp", "nonceStr", "signature"}
    current = wechat.fake.jsapi_ticket
    assert current is not None
    assert data["signature"] == signature(current, data["nonceStr"], data["timestamp"], url)


def test_a_user_token_gets_the_wx_config_data(app, client, wechat) -> None:
    token = token_for(client, "o_partner_user")
    response = jssdk(client, PAGE + "#/step/2?x=1", bearer(token))
    assert response.status_code == 200, response.get_json()
    data = response.get_json()["data"]
    assert data["appId"] == app.config["WECHAT_APPID"]
    assert isinstance(data["timestamp"], int)
    assert len(data["nonceStr"]) == 16 and data["nonceStr"].isalnum()
    assert len(data["signature"]) == 40
    assert_signed_for(data, PAGE, wechat)  # signed without the fragment
    again = jssdk(client, PAGE, bearer(token)).get_json()["data"]
    assert again["nonceStr"] != data["nonceStr"]
    assert wechat.fake.calls_to(GETTICKET) == 1


def test_an_app_token_gets_it_too(client, wechat) -> None:
    response = jssdk(client, PAGE, APP_HEADER)
    assert response.status_code == 200
    assert_signed_for(response.get_json()["data"], PAGE, wechat)


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Bearer face wrong-secret"}],
    ids=["none", "broken", "wrong-app-secret"],
)
def test_without_a_valid_token_it_is_401_before_anything_else(client, wechat, headers) -> None:
    for url in (PAGE, "https://evil.example/", ""):
        response = jssdk(client, url, headers)
        assert response.status_code == 401
        assert response.get_json()["code"] == 401
    assert wechat.fake.calls_to(GETTICKET) == 0


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example/page",
        "https://partner.test.evil.example/",
        "https://evilpartner.test/",
        "//partner.test/page",
        "/signin",
        "javascript:alert(1)//partner.test",
        "ftp://partner.test/file",
        "https://user:pw@partner.test/",
        "https://evil.example@partner.test/",
        "https://partner.test\\@evil.example/",
        "https://partner.test/a\nb",
        "https://[::1/",
        "https://partner.test/" + "a" * 1024,
    ],
)
def test_a_page_off_the_allowed_hosts_is_refused_without_asking_wechat(client, wechat, url):
    token = token_for(client, "o_partner_user")
    response = jssdk(client, url, bearer(token))
    assert response.status_code == 400
    assert response.get_json()["code"] == 400
    assert wechat.fake.calls_to(GETTICKET) == 0
    assert wechat.fake.calls_to(STABLE) == 0


def test_a_missing_url_is_a_400_naming_the_field(client, wechat) -> None:
    token = token_for(client, "o_partner_user")
    response = client.get("/api/wechat/jssdk", headers=bearer(token))
    assert response.status_code == 400
    assert "url" in json.dumps(response.get_json()["data"])


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:8080/app?x=1",
        "https://PARTNER.test/app",
        "https://partner.test:8443/",
        "http://localhost/#frag",  # SERVICE_BASE_URL's host (testing: http://localhost)
    ],
)
def test_pages_on_partner_hosts_and_this_service_are_signed(client, wechat, url) -> None:
    response = jssdk(client, url, APP_HEADER)
    assert response.status_code == 200, response.get_json()
    assert_signed_for(response.get_json()["data"], url.split("#")[0], wechat)


def test_the_service_host_counts_even_off_the_partner_list(make_app, wechat) -> None:
    app = make_app(SIGNIN_REDIRECT_HOSTS=[], SERVICE_BASE_URL="https://berater.test")
    client, here = app.test_client(), {"base_url": "https://berater.test"}
    ok = jssdk(client, "https://berater.test/pages/qna", APP_HEADER, **here)
    assert ok.status_code == 200, ok.get_json()
    assert jssdk(client, "https://partner.test/", APP_HEADER, **here).status_code == 400


# --- the ticket in the store ----------------------------------------------------------------


def test_the_ticket_is_cached_until_five_minutes_before_it_expires(ctx, wechat) -> None:
    first = ticket.jsapi_ticket()
    assert ticket.jsapi_ticket() == first == wechat.fake.jsapi_ticket
    left = store.ttl("wechat", "jsapi_ticket")
    assert left is not None and 7200 - 300 - 5 < left <= 7200 - 300
    assert wechat.fake.calls_to(GETTICKET) == 1


def test_two_apps_sharing_a_store_fetch_one_ticket(
    make_app: Callable[..., Flask], wechat: RunningWeChat
) -> None:
    first, second = make_app().test_client(), make_app().test_client()
    one = jssdk(first, PAGE, APP_HEADER).get_json()["data"]
    two = jssdk(second, PAGE, APP_HEADER).get_json()["data"]
    assert_signed_for(one, PAGE, wechat)
    assert_signed_for(two, PAGE, wechat)
    assert wechat.fake.calls_to(GETTICKET) == 1
    assert wechat.fake.calls_to(STABLE) == 1


def test_concurrent_requests_in_two_apps_fetch_one_ticket(
    make_app: Callable[..., Flask], wechat: RunningWeChat
) -> None:
    clients = [make_app().test_client(), make_app().test_client()]
    barrier = threading.Barrier(16)

    def ask(i: int) -> dict[str, Any]:
        barrier.wait()
        response = jssdk(clients[i % 2], f"{PAGE}&n={i}", APP_HEADER)
        assert response.status_code == 200, response.get_json()
        return response.get_json()["data"]

    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(ask, range(16)))
    for i, data in enumerate(answers):
        assert_signed_for(data, f"{PAGE}&n={i}", wechat)
    assert wechat.fake.calls_to(GETTICKET) == 1
    assert wechat.fake.calls_to(STABLE) == 1


def test_a_waiter_uses_the_ticket_the_lock_holder_stores(ctx, wechat) -> None:
    store.set_if_absent("wechat", "jsapi_ticket:lock", "another-process", ttl=5)

    def other_process_stores_ticket() -> None:
        with ctx.app_context():
            store.set("wechat", "jsapi_ticket", "ticket-from-elsewhere", ttl=60)

    timer = threading.Timer(0.3, other_process_stores_ticket)
    timer.start()
    assert ticket.jsapi_ticket() == "ticket-from-elsewhere"
    timer.join()
    assert wechat.fake.calls_to(GETTICKET) == 0


def test_a_stuck_holder_is_a_quick_503(make_app, wechat) -> None:
    client = make_app(WECHAT_TOKEN_WAIT=0.3).test_client()
    with client.application.app_context():
        store.set_if_absent("wechat", "jsapi_ticket:lock", "stuck-process", ttl=5)
    response = jssdk(client, PAGE, APP_HEADER)
    assert response.status_code == 503
    assert "jsapi ticket" in response.get_json()["error"]
    assert wechat.fake.calls_to(GETTICKET) == 0


def test_an_invalid_ticket_is_dropped_and_fetched_again(ctx, wechat) -> None:
    old = ticket.jsapi_ticket()
    wechat.fake.revoke_tickets()  # WeChat no longer holds it
    ticket.invalidate("some-older-ticket")  # only the cached value is dropped
    assert ticket.jsapi_ticket() == old
    ticket.invalidate(old)
    assert store.get("wechat", "jsapi_ticket") is None
    fresh = ticket.jsapi_ticket()
    assert fresh != old
    assert fresh == wechat.fake.jsapi_ticket
    assert wechat.fake.calls_to(GETTICKET) == 2  # no forced second fetch: WeChat has none


def test_flask_wechat_ticket_renew_drops_the_cached_ticket(app, client, wechat) -> None:
    old = jssdk(client, PAGE, APP_HEADER).get_json()["data"]
    assert_signed_for(old, PAGE, wechat)
    wechat.fake.revoke_tickets()
    result = app.test_cli_runner().invoke(args=["wechat", "ticket", "renew"])
    assert result.exit_code == 0, result.output
    assert "renewed; kept for 6" in result.output
    assert wechat.fake.jsapi_ticket is not None
    assert wechat.fake.jsapi_ticket not in result.output  # never the ticket
    assert_signed_for(jssdk(client, PAGE, APP_HEADER).get_json()["data"], PAGE, wechat)
    assert wechat.fake.calls_to(GETTICKET) == 2


@pytest.mark.parametrize("errcode", [40001, 40014, 42001])
def test_a_rejected_access_token_is_dropped_and_the_ticket_fetched_with_a_new_one(
    ctx, wechat, errcode: int
) -> None:
    old_token = keeper.access_token()
    wechat.fake.fail(GETTICKET, "errcode", errcode=errcode)
    assert ticket.jsapi_ticket() == wechat.fake.jsapi_ticket
    assert keeper.access_token() != old_token
    assert wechat.fake.calls_to(GETTICKET) == 2
    assert wechat.fake.calls_to(STABLE) == 3  # the first, the renewal, the forced one


@pytest.mark.parametrize(
    ("errcode", "status", "error"),
    [(45009, 503, ServiceUnavailable), (48001, 502, UpstreamError), (-1, 503, ServiceUnavailable)],
)
def test_a_refused_ticket_fetch_is_clear_releases_the_lock_and_the_next_request_retries(
    client, wechat, errcode: int, status: int, error: type[Exception]
) -> None:
    wechat.fake.fail(GETTICKET, "errcode", errcode=errcode)
    response = jssdk(client, PAGE, APP_HEADER)
    assert response.status_code == status
    assert "errmsg" not in json.dumps(response.get_json())
    with client.application.app_context():
        assert store.get("wechat", "jsapi_ticket:lock") is None
        assert store.get("wechat", "jsapi_ticket") is None
    assert jssdk(client, PAGE, APP_HEADER).status_code == 200


@pytest.mark.parametrize("mode", ["http500", "html"])
def test_an_unreadable_ticket_answer_is_a_502(client, wechat, mode: str) -> None:
    wechat.fake.fail(GETTICKET, mode, times=0)
    response = jssdk(client, PAGE, APP_HEADER)
    assert response.status_code == 502
    wechat.fake.clear_faults()


def test_over_real_http_with_the_stand_in(live_server, client, wechat, log_records) -> None:
    token = token_for(client, "o_partner_user")
    url = "http://localhost:8000/app/photo?id=7"
    response = requests.get(
        f"{live_server}/api/wechat/jssdk",
        params={"url": url + "#token=abc"},
        headers=bearer(token),
        timeout=5,
    )
    assert response.status_code == 200
    data = response.json()["data"]
    assert_signed_for(data, url, wechat)
    current = wechat.fake.jsapi_ticket
    assert current is not None
    assert all(current not in record.getMessage() for record in log_records)
