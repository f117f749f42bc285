"""The limit on outbound calls (berater/ext/upstream.py), over real HTTP against gunicorn as
configured (threaded workers), one worker, UPSTREAM_MAX_CONCURRENT=2, the stand-in WeChat
answering each code exchange only after SLOW seconds.

While two sign-ins wait on WeChat, a third sign-in and an SMS send are refused at once with
503, `Retry-After` and the envelope, and the SMS send used none of the person's send limits;
a token check and a webhook text are answered promptly all the while; once WeChat answers,
the two waiting sign-ins succeed and the refused ones go through.
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from flask import Flask

from standins import chat
from standins.aliyun import RunningAliyunSms
from standins.wechat import RunningWeChat
from tests import servers
from tests.helpers import InFlight

pytestmark = pytest.mark.backends

SLOW = 2.0  # the stand-in WeChat's answer time, under WECHAT_TIMEOUT's 3 s read
PROMPT = 1.0  # what "at once" and "promptly" mean here, on a busy shared machine
EXCHANGE = "/sns/oauth2/access_token"
ACCOUNT = "gh_upstream_test"


@pytest.fixture
def service(
    app: Flask, base_settings: dict[str, Any], tmp_path: Path, wechat: RunningWeChat
) -> Iterator[servers.Gunicorn]:
    try:
        with servers.serving(
            base_settings,
            tmp_path / "gunicorn.log",
            workers=1,
            UPSTREAM_MAX_CONCURRENT="2",
            GUNICORN_THREADS="8",
        ) as gunicorn:
            yield gunicorn
    finally:
        wechat.fake.latency = 0.0


def webhook_text(port: int, openid: str) -> tuple[int, dict[str, str], float]:
    """A signed text message to /chat/: status, the reply's fields, seconds taken."""
    settings = chat.Settings("dev-wechat-token", "wx_dev_appid")  # the testing defaults
    xml = chat.build_message(openid, ACCOUNT, content="学费多少")
    query, text = chat.signed_request(xml, openid, settings, False, ACCOUNT)
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(
            "POST",
            "/chat/?" + urlencode(query),
            body=text.encode(),
            headers={"Content-Type": "text/xml; charset=utf-8", "Connection": "close"},
        )
        response = conn.getresponse()
        reply = response.read().decode()
    finally:
        conn.close()
    return response.status, chat.parse_fields(reply), time.monotonic() - started


def test_past_the_limit_sign_ins_and_sms_get_503_at_once_and_the_rest_is_served(
    service: servers.Gunicorn, wechat: RunningWeChat, aliyun: RunningAliyunSms
) -> None:
    port = service.port
    token = InFlight(port, "POST", "/api/test/token/o_upstream_sms").done().body["data"]["token"]
    checker = InFlight(port, "POST", "/api/test/token/o_upstream_chk").done().body["data"]["token"]
    wechat.fake.latency = SLOW
    before = wechat.fake.calls_to(EXCHANGE)
    waiting = [
        InFlight(port, "POST", "/api/token", body={"code": wechat.fake.issue_code(f"o_wait_{n}")})
        for n in range(2)
    ]
    deadline = time.monotonic() + 5
    while wechat.fake.calls_to(EXCHANGE) < before + 2:
        assert time.monotonic() < deadline, "the two sign-ins never reached WeChat"
        time.sleep(0.02)

    third_code = wechat.fake.issue_code("o_third")
    third = InFlight(port, "POST", "/api/token", body={"code": third_code}).done()
    assert third.error is None, third.error
    assert third.status == 503, third.body
    assert third.headers.get("Retry-After") == "1"
    assert third.body == {"code": 503, "error": third.body["error"], "data": {"retry_after": 1}}
    assert third.ended - third.started < PROMPT
    assert wechat.fake.calls_to(EXCHANGE) == before + 2  # the third never left the process

    phone = "13900139001"
    send = InFlight(port, "POST", "/api/code", token, {"phone": phone}).done()
    assert send.status == 503 and send.headers.get("Retry-After") == "1", send.body
    assert send.ended - send.started < PROMPT
    assert not [m for m in aliyun.fake.sent if m.phone == phone]

    check = InFlight(port, "GET", "/api/token", checker).done()
    assert check.status == 200 and check.body["data"]["kind"] == "wechat", check.body
    assert check.ended - check.started < PROMPT
    status, fields, took = webhook_text(port, "o_upstream_chat")
    assert status == 200 and fields.get("MsgType") == "text", fields
    assert fields.get("ToUserName") == "o_upstream_chat"
    assert took < PROMPT
    assert all(call.ended == 0.0 for call in waiting), "the slow sign-ins ended too early"

    for call in waiting:
        call.done()
        assert call.status == 200 and call.body["data"]["token"], call.body
        assert call.ended - call.started >= SLOW
    wechat.fake.latency = 0.0
    # The refused ones were refused before anything was used: the same code still signs in,
    # and the same person's send is not held back by the one-a-minute limit.
    again = InFlight(port, "POST", "/api/token", body={"code": third_code}).done()
    assert again.status == 200, again.body
    resend = InFlight(port, "POST", "/api/code", token, {"phone": phone}).done()
    assert resend.status == 200, resend.body
    assert len([m for m in aliyun.fake.sent if m.phone == phone]) == 1
