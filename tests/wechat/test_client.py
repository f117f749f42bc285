"""The WeChat API client: token handling, error mapping, menus and outgoing messages."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from flask import Flask

from berater.errors import ServiceUnavailable, TooManyRequests, UpstreamError
from berater.ext.wechat import client, keeper
from berater.ext.wechat.client import RecipientUnavailable, WeChatError
from standins.wechat import RunningWeChat

pytestmark = pytest.mark.backends

STABLE = "/cgi-bin/stable_token"
MENU_GET = "/cgi-bin/menu/get"
CUSTOM = "/cgi-bin/message/custom/send"
TEMPLATE = "/cgi-bin/message/template/send"
# An errcode, a 5xx or an HTML page is an answer: the error is raised at once, well within
# the read timeout (1.5 s in tests).
ANSWERED_FAILURE = 1.0
MENU = {
    "button": [
        {"type": "view", "name": "新生报到", "url": "https://berater.example/signin"},
        {
            "name": "招生咨询",
            "sub_button": [{"type": "click", "name": "常见问题", "key": "FAQ"}],
        },
    ]
}


def test_menu_round_trip_with_raw_chinese(ctx: Flask, wechat: RunningWeChat) -> None:
    client.create_menu(MENU)
    assert "新生报到".encode() in wechat.fake.api.last_body  # raw UTF-8, not \\u escapes
    assert client.get_menu() == MENU
    client.delete_menu()
    assert client.get_menu() == {"button": []}
    assert wechat.fake.calls_to(STABLE) == 1  # one token for every call


def test_menu_with_too_many_buttons_is_refused_with_its_errcode(
    ctx: Flask, wechat: RunningWeChat
) -> None:
    buttons = [{"type": "click", "name": f"b{i}", "key": f"K{i}"} for i in range(4)]
    with pytest.raises(WeChatError) as caught:
        client.create_menu({"button": buttons})
    assert caught.value.errcode == 40016
    assert caught.value.status == 502
    assert "invalid button" not in caught.value.message  # never WeChat's errmsg
    assert wechat.fake.menu is None


def test_rejected_token_is_renewed_and_the_call_retried_once(
    ctx: Flask, wechat: RunningWeChat
) -> None:
    old = keeper.access_token()
    wechat.fake.fail(MENU_GET, "errcode", errcode=40001)
    assert client.get_menu() == {"button": []}
    assert wechat.fake.calls_to(MENU_GET) == 2
    assert keeper.access_token() != old


@pytest.mark.parametrize("errcode", [40014, 42001])
def test_other_token_errors_also_renew(ctx: Flask, wechat: RunningWeChat, errcode: int) -> None:
    keeper.access_token()
    wechat.fake.fail(MENU_GET, "errcode", errcode=errcode)
    client.get_menu()
    assert wechat.fake.calls_to(MENU_GET) == 2


def test_token_expired_at_wechat_is_renewed(ctx: Flask, wechat: RunningWeChat) -> None:
    keeper.access_token()
    wechat.fake.revoke_tokens()  # e.g. fetched with the classic endpoint somewhere else
    client.create_menu(MENU)
    assert wechat.fake.menu == MENU
    assert wechat.fake.calls_to(STABLE) == 2


def test_token_rejected_twice_is_an_error_not_a_loop(ctx: Flask, wechat: RunningWeChat) -> None:
    wechat.fake.fail(MENU_GET, "errcode", errcode=40001, times=None)
    with pytest.raises(WeChatError) as caught:
        client.get_menu()
    assert caught.value.errcode == 40001
    assert wechat.fake.calls_to(MENU_GET) == 2


@pytest.mark.parametrize(
    ("errcode", "error", "words"),
    [
        (-1, ServiceUnavailable, "busy"),
        (45009, ServiceUnavailable, "daily API quota"),
        (45011, TooManyRequests, "per-minute"),
    ],
)
def test_quota_and_busy_are_clear_errors(
    ctx: Flask, wechat: RunningWeChat, errcode: int, error: type[Exception], words: str
) -> None:
    keeper.access_token()
    wechat.fake.fail(MENU_GET, "errcode", errcode=errcode)
    started = time.monotonic()
    with pytest.raises(error) as caught:
        client.get_menu()
    assert time.monotonic() - started < ANSWERED_FAILURE
    assert words in str(caught.value)
    assert wechat.fake.calls_to(MENU_GET) == 1


@pytest.mark.parametrize("mode", ["http500", "html"])
def test_broken_answers_are_upstream_errors(ctx: Flask, wechat: RunningWeChat, mode: str) -> None:
    keeper.access_token()
    wechat.fake.fail(MENU_GET, mode)
    started = time.monotonic()
    with pytest.raises(UpstreamError):
        client.get_menu()
    assert time.monotonic() - started < ANSWERED_FAILURE


def test_timeout_fails_within_the_read_timeout(
    make_app: Callable[..., Flask], wechat: RunningWeChat, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(WECHAT_TIMEOUT=(2.0, 3.0))  # the production values
    monkeypatch.setattr(wechat.fake, "timeout_sleep", 4.0)
    with app.app_context():
        keeper.access_token()
        wechat.fake.fail(MENU_GET, "timeout")
        started = time.monotonic()
        with pytest.raises(UpstreamError, match="in time"):
            client.get_menu()
        assert time.monotonic() - started < 3.5


def test_send_text_reaches_the_user(ctx: Flask, wechat: RunningWeChat) -> None:
    client.send_text("o_dev_student", "报到时间：9月1日")
    assert wechat.fake.sent == [
        {
            "kind": "custom",
            "touser": "o_dev_student",
            "msgtype": "text",
            "text": {"content": "报到时间：9月1日"},
        }
    ]


def test_send_template_wraps_plain_values(ctx: Flask, wechat: RunningWeChat) -> None:
    msgid = client.send_template(
        "o_dev_student",
        "TPL_1",
        {"first": "录取通知", "remark": {"value": "请查收", "color": "#173177"}},
        url="https://berater.example/",
    )
    assert isinstance(msgid, int)
    (sent,) = wechat.fake.sent
    assert sent["data"] == {
        "first": {"value": "录取通知"},
        "remark": {"value": "请查收", "color": "#173177"},
    }
    assert sent["url"] == "https://berater.example/"


def test_send_retries_busy_and_5xx_a_bounded_number_of_times(
    ctx: Flask, wechat: RunningWeChat
) -> None:
    keeper.access_token()
    wechat.fake.fail(CUSTOM, "errcode", errcode=-1)
    wechat.fake.fail(CUSTOM, "http500")
    client.send_text("o_dev_student", "hello")
    assert wechat.fake.calls_to(CUSTOM) == 3
    assert len(wechat.fake.sent) == 1


def test_send_gives_up_after_three_attempts(ctx: Flask, wechat: RunningWeChat) -> None:
    keeper.access_token()
    wechat.fake.fail(TEMPLATE, "http500", times=None)
    with pytest.raises(UpstreamError):
        client.send_template("o_dev_student", "TPL_1", {"first": "x"})
    assert wechat.fake.calls_to(TEMPLATE) == 3
    assert wechat.fake.sent == []


def test_send_does_not_retry_a_read_timeout(
    make_app: Callable[..., Flask], wechat: RunningWeChat, monkeypatch: pytest.MonkeyPatch
) -> None:
    # WeChat may have delivered the message already; a retry could send it twice.
    app = make_app(WECHAT_TIMEOUT=(1.0, 0.3))
    monkeypatch.setattr(wechat.fake, "timeout_sleep", 0.6)
    with app.app_context():
        keeper.access_token()
        wechat.fake.fail(CUSTOM, "timeout")
        with pytest.raises(UpstreamError, match="in time"):
            client.send_text("o_dev_student", "hello")
    assert wechat.fake.calls_to(CUSTOM) == 1


def test_send_does_not_retry_quota(ctx: Flask, wechat: RunningWeChat) -> None:
    keeper.access_token()
    wechat.fake.fail(CUSTOM, "errcode", errcode=45009)
    with pytest.raises(ServiceUnavailable):
        client.send_text("o_dev_student", "hello")
    assert wechat.fake.calls_to(CUSTOM) == 1


def test_outside_the_48_hour_window_is_a_clear_error(ctx: Flask, wechat: RunningWeChat) -> None:
    wechat.fake.refuse("o_silent", 45015)
    with pytest.raises(RecipientUnavailable) as caught:
        client.send_text("o_silent", "hello")
    assert caught.value.errcode == 45015
    assert caught.value.status == 409
    assert "48 hours" in caught.value.message
    assert wechat.fake.calls_to(CUSTOM) == 1


def test_not_subscribed_is_a_clear_error(ctx: Flask, wechat: RunningWeChat) -> None:
    wechat.fake.refuse("o_gone", 43004)
    with pytest.raises(RecipientUnavailable) as caught:
        client.send_template("o_gone", "TPL_1", {"first": "x"})
    assert caught.value.errcode == 43004
    assert "does not follow" in caught.value.message
    assert wechat.fake.calls_to(TEMPLATE) == 1


def test_other_errcodes_carry_the_code(ctx: Flask, wechat: RunningWeChat) -> None:
    with pytest.raises(WeChatError) as caught:
        client.send_template("o_dev_student", "", {"first": "x"})
    assert caught.value.errcode == 40037
    assert caught.value.data == {"errcode": 40037}


def test_call_passes_params_and_returns_the_answer(ctx: Flask, wechat: RunningWeChat) -> None:
    client.create_menu(MENU)
    answer = client.call("GET", MENU_GET, params={"lang": "zh_CN"})
    assert answer == {"menu": MENU}
