"""The webhook over HTTP: handshake, signatures, unsafe bodies, safe mode, dedupe, routes."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qsl, urlsplit

import pytest
from defusedxml.ElementTree import fromstring

from berater.chat import routes
from berater.chat.services import BUSY_REPLY
from berater.db import db
from berater.extensions import tasks
from tests import factories
from tests.chat.helpers import (
    AES_KEY,
    OLD_AES_KEY,
    TOKEN,
    aes_decrypt,
    aes_encrypt,
    event_xml,
    post,
    reply_fields,
    safe_request,
    sha1_sorted,
    signed_query,
    text_xml,
    url,
)

pytestmark = pytest.mark.backends

BOMB = (
    b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
    + b"".join(f'<!ENTITY a{i} "{"&a;" * 10}">'.encode() for i in range(1))
    + b"]><xml><MsgType>text</MsgType><Content>&a0;</Content></xml>"
)


@pytest.fixture
def safe_app(make_app):
    return make_app(WECHAT_AES_KEY=AES_KEY, WECHAT_AES_KEY_PREVIOUS=OLD_AES_KEY)


# --- handshake -------------------------------------------------------------------------------


def test_the_handshake_echoes_echostr_as_plain_text(client):
    response = client.get(url(signed_query(echostr="1234567890abc")))
    assert response.status_code == 200
    assert response.data == b"1234567890abc"
    assert response.mimetype == "text/plain"


def test_a_handshake_with_a_bad_signature_is_403_and_reflects_nothing(client):
    query = signed_query(echostr="<script>alert(1)</script>")
    query["signature"] = "0" * 40
    response = client.get(url(query))
    assert response.status_code == 403
    assert b"script" not in response.data
    assert response.data == b""
    assert not response.is_json


def test_a_handshake_signed_with_another_token_is_refused(client):
    response = client.get(url(signed_query(token="other", echostr="x")))
    assert response.status_code == 403


@pytest.mark.parametrize("skew", [-302, 302, 10**6])
def test_a_stale_or_future_timestamp_is_refused(client, skew):
    query = signed_query(timestamp=int(time.time()) + skew, echostr="x")
    assert client.get(url(query)).status_code == 403
    assert (
        post(client, event_xml("subscribe"), timestamp=int(time.time()) + skew).status_code == 403
    )


def test_a_timestamp_within_five_minutes_is_accepted(client):
    query = signed_query(timestamp=int(time.time()) - 290, echostr="ok")
    assert client.get(url(query)).data == b"ok"


def test_missing_signature_parameters_are_refused(client):
    assert client.get("/chat/?echostr=x").status_code == 403
    assert client.post("/chat/", data=b"<xml/>", content_type="text/xml").status_code == 403


# --- the body is read only after the signature holds ------------------------------------------


def test_a_bad_signature_is_403_and_the_body_is_never_parsed(client):
    query = signed_query()
    query["signature"] = sha1_sorted("wrong", query["timestamp"], query["nonce"])
    # A body the parser would refuse with 400: a 403 proves it was never parsed.
    response = client.post(url(query), data=BOMB + b"<<<", content_type="text/xml")
    assert response.status_code == 403
    assert response.data == b""


@pytest.mark.parametrize(
    "body",
    [
        BOMB,
        b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
        b"<xml><MsgType>text</MsgType><Content>&e;</Content></xml>",
        b'<!DOCTYPE xml SYSTEM "http://127.0.0.1:9/x.dtd"><xml><MsgType>text</MsgType></xml>',
        "<xml><MsgType>text</MsgType><Content>中文</Content></xml>".encode("gbk"),
        b"<xml><ToUserName><![CDATA[gh",
        b"",
    ],
    ids=["expansion", "external-entity", "dtd", "not-utf8", "truncated", "empty"],
)
def test_an_unsafe_or_broken_body_is_400_fast_with_no_outbound_call(client, wechat, body):
    started = time.monotonic()
    response = post(client, body)
    assert response.status_code == 400
    assert time.monotonic() - started < 1
    assert not response.is_json
    assert wechat.fake.calls == {}


def test_a_10_mb_body_is_400_fast(client, wechat):
    started = time.monotonic()
    response = post(client, b"<xml>" + b"a" * (10 * 1024 * 1024) + b"</xml>")
    assert response.status_code == 400
    assert time.monotonic() - started < 1
    assert wechat.fake.calls == {}


def test_a_body_between_the_json_limit_and_64_kib_is_read(client):
    padding = "x" * (40 * 1024)
    xml = event_xml("subscribe").replace("</xml>", f"<Pad>{padding}</Pad></xml>")
    response = post(client, xml)
    assert response.status_code == 200
    assert "欢迎" in reply_fields(response)["Content"]


@pytest.mark.parametrize(
    "xml",
    [
        "<xml><ToUserName>gh</ToUserName><FromUserName>o_u</FromUserName>"
        "<CreateTime>1</CreateTime></xml>",
        "<xml><ToUserName>gh</ToUserName><FromUserName>o_u</FromUserName>"
        "<CreateTime>1</CreateTime><MsgType>te xt&lt;</MsgType></xml>",
        "<xml><ToUserName>gh</ToUserName><FromUserName>o u</FromUserName>"
        "<CreateTime>1</CreateTime><MsgType>text</MsgType></xml>",
        "<xml><ToUserName>gh</ToUserName><FromUserName>o_u</FromUserName>"
        "<CreateTime>soon</CreateTime><MsgType>text</MsgType></xml>",
    ],
    ids=["no-msgtype", "bad-msgtype", "bad-sender", "bad-createtime"],
)
def test_valid_xml_that_is_not_a_message_is_400(client, xml):
    assert post(client, xml).status_code == 400


def test_a_msgtype_this_service_does_not_know_gets_the_default_reply(client, app):
    xml = event_xml("x").replace("<MsgType><![CDATA[event]]>", "<MsgType><![CDATA[hologram]]>")
    response = post(client, xml)
    assert response.status_code == 200
    assert reply_fields(response)["Content"] == app.config["WECHAT_DEFAULT_REPLY"]


def test_an_unknown_encrypt_type_is_400(client):
    assert post(client, event_xml("subscribe"), encrypt_type="rot13").status_code == 400


# --- safe mode --------------------------------------------------------------------------------


def test_a_safe_mode_message_is_answered_encrypted(safe_app):
    client = safe_app.test_client()
    address, body = safe_request(event_xml("subscribe", sender="o_safe"))
    response = client.post(address, data=body, content_type="text/xml")
    assert response.status_code == 200
    envelope = reply_fields(response)
    assert envelope["MsgSignature"] == sha1_sorted(
        "dev-wechat-token", envelope["TimeStamp"], envelope["Nonce"], envelope["Encrypt"]
    )
    inner = {c.tag: c.text for c in fromstring(aes_decrypt(envelope["Encrypt"]))}
    assert inner["ToUserName"] == "o_safe"
    assert inner["Content"] == safe_app.config["WECHAT_WELCOME_TEXT"]


def test_the_previous_key_is_accepted_while_rotating_and_the_reply_uses_it(safe_app):
    client = safe_app.test_client()
    address, body = safe_request(event_xml("subscribe"), key=OLD_AES_KEY)
    response = client.post(address, data=body, content_type="text/xml")
    assert response.status_code == 200
    inner = aes_decrypt(reply_fields(response)["Encrypt"], key=OLD_AES_KEY)
    assert "欢迎" in inner


def test_a_key_that_is_neither_current_nor_previous_is_refused(safe_app):
    other = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR"
    address, body = safe_request(event_xml("subscribe"), key=other)
    assert (
        safe_app.test_client().post(address, data=body, content_type="text/xml").status_code == 400
    )


def test_a_bad_msg_signature_is_403(safe_app):
    address, body = safe_request(event_xml("subscribe"), msg_signature="f" * 40)
    response = safe_app.test_client().post(address, data=body, content_type="text/xml")
    assert response.status_code == 403


@pytest.mark.parametrize(
    "encrypted",
    ["@@@not-base64@@@", "QUJD", "A" * 44],
    ids=["base64", "length", "padding"],
)
def test_a_broken_ciphertext_is_400(safe_app, encrypted):
    address, body = safe_request(event_xml("subscribe"), encrypted=encrypted)
    response = safe_app.test_client().post(address, data=body, content_type="text/xml")
    assert response.status_code == 400


def test_a_message_for_another_appid_is_400(safe_app):
    from tests.chat.helpers import aes_encrypt

    encrypted = aes_encrypt(event_xml("subscribe"), appid="wx_someone_else")
    address, body = safe_request("", encrypted=encrypted)
    response = safe_app.test_client().post(address, data=body, content_type="text/xml")
    assert response.status_code == 400


def test_safe_mode_without_encrypt_is_400(safe_app):
    query = signed_query(encrypt_type="aes", msg_signature="0" * 40)
    response = safe_app.test_client().post(
        url(query), data=event_xml("subscribe").encode(), content_type="text/xml"
    )
    assert response.status_code == 400


def test_safe_mode_without_a_configured_key_is_400(client):
    address, body = safe_request(event_xml("subscribe"))
    assert client.post(address, data=body, content_type="text/xml").status_code == 400


# --- each message once ------------------------------------------------------------------------
#
# A route with side effects runs once per message; a pure route (it only reads) may run again
# for a repeat, but every delivery of one message gets the first delivery's reply, byte for byte.


@pytest.fixture
def counted(monkeypatch):
    """Count runs of the welcome handler (our own code, not a client library) and answer
    differently each run, so that an identical reply proves it is the first one kept."""
    runs: list[str] = []
    original = routes.welcome

    def welcome(message):
        runs.append(message.sender)
        number = len(runs)
        time.sleep(0.2)  # long enough for parallel deliveries to overlap
        return f"{original(message)} #{number}"

    monkeypatch.setattr(routes, "welcome", welcome)
    return runs


@pytest.fixture
def side_effect(monkeypatch):
    """A route with a side effect (not pure) on the menu key COUNTED; returns its runs."""
    runs: list[str] = []
    original = routes.table

    def record(message):
        runs.append(message.sender)
        number = len(runs)
        time.sleep(0.2)
        return f"recorded #{number}"

    def table():
        return {**original(), ("event", "CLICK", "COUNTED"): routes.Route(record)}

    monkeypatch.setattr(routes, "table", table)
    return runs


def _deliver_in_parallel(live_server, xml: str, times: int = 10) -> list:
    import requests

    def deliver(_):
        return requests.post(live_server + url(signed_query()), data=xml.encode(), timeout=10)

    with ThreadPoolExecutor(times) as pool:
        return list(pool.map(deliver, range(times)))


def test_a_repeated_delivery_of_a_pure_route_gets_the_first_reply(client, counted):
    xml = event_xml("subscribe", created=1700000000)
    first, second = post(client, xml), post(client, xml)
    assert reply_fields(first)["Content"].endswith(" #1")
    assert second.data == first.data


def test_parallel_deliveries_of_a_pure_route_all_get_the_first_reply(live_server, counted):
    answers = _deliver_in_parallel(live_server, event_xml("subscribe", created=1700000001))
    assert {a.status_code for a in answers} == {200}
    assert len({a.content for a in answers}) == 1
    assert b"#" in answers[0].content


def test_a_repeated_delivery_of_a_route_with_side_effects_runs_once(client, side_effect):
    xml = event_xml("CLICK", EventKey="COUNTED", created=1700000003)
    first, second = post(client, xml), post(client, xml)
    assert reply_fields(first)["Content"] == "recorded #1"
    assert second.data == first.data
    assert side_effect == ["o_user"]


def test_parallel_deliveries_of_a_route_with_side_effects_run_it_once(live_server, side_effect):
    xml = event_xml("CLICK", EventKey="COUNTED", created=1700000004)
    answers = _deliver_in_parallel(live_server, xml)
    assert {a.status_code for a in answers} == {200}
    assert len({a.content for a in answers}) == 1
    assert "recorded #1" in answers[0].content.decode()
    assert side_effect == ["o_user"]


def test_parallel_deliveries_of_a_slow_question_send_one_answer(make_app, slow_qna, wechat):
    app = make_app(QNA_BACKEND=slow_qna, TEST_QNA_ANSWER="九月一日报到")
    xml = text_xml("新生报到时间？", sender="o_asker", msg_id="6000000000000000042")

    def deliver(_):
        return post(app.test_client(), xml)

    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(deliver, range(10)))
    assert {a.data for a in answers} == {b"success"}
    assert len(_wait_for_sent(wechat, count=2, timeout=1.0)) == 1


def test_a_question_answered_in_the_reply_is_one_store_round_trip(client, store_client):
    post(client, text_xml("你好", sender="o_warm"))  # the app's first message loads the script
    with store_client.monitor() as monitor:
        assert post(client, text_xml("新生报到时间？", sender="o_once")).status_code == 200
        store_client.echo("end of the message")
        sent = []
        while "end of the message" not in (command := monitor.next_command())["command"]:
            if command["client_type"] != "lua":  # not one the script ran itself
                sent.append(command["command"].split()[0].upper())
    opening = {"HELLO", "PING", "CLIENT", "SELECT", "AUTH"}  # a connection opened or checked
    # The signature bound and the reply kept by one script.
    assert [name for name in sent if name not in opening] == ["EVALSHA"]


def test_two_events_from_different_users_at_the_same_second_both_run(client, counted):
    post(client, event_xml("subscribe", sender="o_a", created=1700000002))
    post(client, event_xml("subscribe", sender="o_b", created=1700000002))
    assert counted == ["o_a", "o_b"]


# --- one message per signed query -------------------------------------------------------------
#
# The query signature covers token, timestamp and nonce, not the body: a signed query copied
# from a proxy log must not carry a forged message while its timestamp is fresh.


def _post_under(client, query: dict[str, str], xml: str):
    return client.post(url(query), data=xml.encode(), content_type="text/xml")


@pytest.fixture
def victim(app):
    with app.app_context():
        factories.student("o_victim", factories.source_student(stuid="202688888"))
        db.session.commit()
    return "o_victim"


def test_a_signed_query_replayed_with_a_forged_body_is_403_and_answers_nothing(
    client, store_client, victim, log_records
):
    query = signed_query()
    assert _post_under(client, query, event_xml("subscribe", sender="o_user")).status_code == 200
    forged = event_xml("CLICK", sender=victim, EventKey="STUID", created=1700000100)
    log_records.clear()
    response = _post_under(client, query, forged)
    assert response.status_code == 403
    assert response.data == b""
    assert store_client.get(f"berater:chat:ev:{victim}:1700000100") is None  # never handled
    refused = [r for r in log_records if r.name == "berater.chat" and r.levelno == logging.WARNING]
    assert len(refused) == 1
    logged = " ".join(r.getMessage() for r in log_records)
    assert victim not in logged
    assert "STUID" not in logged
    assert "202688888" not in logged
    # The same message under a signature of its own is answered: the 403 was the replay's.
    assert "202688888" in reply_fields(post(client, forged))["Content"]


def test_wechat_retrying_a_message_under_its_signature_gets_the_first_reply(client, counted):
    query, xml = signed_query(), event_xml("subscribe", created=1700000101)
    first, again = _post_under(client, query, xml), _post_under(client, query, xml)
    assert first.status_code == again.status_code == 200
    assert reply_fields(first)["Content"].endswith(" #1")
    assert again.data == first.data


def test_distinct_messages_under_fresh_signatures_are_all_answered(client, counted):
    for n in range(5):
        response = post(client, event_xml("subscribe", sender=f"o_user{n}", created=1700000102))
        assert response.status_code == 200
        assert reply_fields(response)["Content"].endswith(f" #{n + 1}")
    # A message signed again (a new timestamp and nonce) is still the same message.
    again = post(client, event_xml("subscribe", sender="o_user0", created=1700000102))
    assert reply_fields(again)["Content"].endswith(" #1")
    assert counted == [f"o_user{n}" for n in range(5)] + ["o_user0"]


def test_parallel_messages_under_one_signature_have_one_winner(live_server):
    import requests

    query = signed_query()
    bodies = [event_xml("subscribe", sender=f"o_race{n}", created=1700000103) for n in range(8)]
    barrier = threading.Barrier(len(bodies))

    def deliver(xml: str) -> int:
        barrier.wait()
        answer = requests.post(live_server + url(query), data=xml.encode(), timeout=10)
        return answer.status_code

    with ThreadPoolExecutor(len(bodies)) as pool:
        statuses = list(pool.map(deliver, bodies))
    assert sorted(statuses) == [200] + [403] * 7


def test_a_safe_mode_retry_encrypted_again_under_the_same_signature_is_answered(safe_app, counted):
    client = safe_app.test_client()
    xml = event_xml("subscribe", sender="o_safe", created=1700000104)
    query = signed_query(encrypt_type="aes")

    def deliver() -> str:
        encrypted = aes_encrypt(xml)  # a fresh random prefix: another ciphertext each time
        signed = query | {
            "msg_signature": sha1_sorted(TOKEN, query["timestamp"], query["nonce"], encrypted)
        }
        body = f"<xml><ToUserName>gh_test</ToUserName><Encrypt>{encrypted}</Encrypt></xml>"
        response = _post_under(client, signed, body)
        assert response.status_code == 200
        return aes_decrypt(reply_fields(response)["Encrypt"])

    first, again = deliver(), deliver()
    assert " #1" in first
    assert again == first


def test_a_safe_mode_query_replayed_as_plaintext_with_a_forged_body_is_refused(safe_app, victim):
    client = safe_app.test_client()
    address, body = safe_request(event_xml("subscribe", sender="o_safe"))
    assert client.post(address, data=body, content_type="text/xml").status_code == 200
    query = dict(parse_qsl(urlsplit(address).query))
    plain = {k: v for k, v in query.items() if k not in ("encrypt_type", "msg_signature")}
    forged = event_xml("CLICK", sender=victim, EventKey="STUID")
    response = _post_under(client, plain, forged)
    assert response.status_code == 403
    assert b"202688888" not in response.data


# --- replies ----------------------------------------------------------------------------------


def test_markup_and_cdata_end_in_a_reply_stay_well_formed(make_app):
    text = "a ]]> b <b>bold</b> & \x01"
    client = make_app(WECHAT_WELCOME_TEXT=text).test_client()
    response = post(client, event_xml("subscribe"))
    assert reply_fields(response)["Content"] == "a ]]> b <b>bold</b> & "
    assert b"<b>" not in response.data


def test_a_reply_over_2048_bytes_is_cut_at_a_character_boundary_with_a_link(make_app):
    link = "https://berater.test/qna"
    client = make_app(WECHAT_WELCOME_TEXT="中" * 1000, WECHAT_ANSWER_URL=link).test_client()
    content = reply_fields(post(client, event_xml("subscribe")))["Content"]
    assert len(content.encode("utf-8")) <= 2048
    assert content.endswith("…\n" + link)
    assert set(content.split("…")[0]) == {"中"}


# --- routes -----------------------------------------------------------------------------------


def _wait_for_sent(wechat, count=1, timeout=5.0):
    deadline = time.monotonic() + timeout
    while len(wechat.fake.sent) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return wechat.fake.sent


def test_a_fast_qna_answers_a_text_inside_the_reply(app, client, wechat):
    response = post(client, text_xml("新生报到时间？", sender="o_asker"))
    assert reply_fields(response)["Content"] == app.config["WECHAT_QNA_NOT_READY"]
    assert wechat.fake.sent == []


def test_a_slow_qna_answers_success_at_once_and_sends_the_answer_later(make_app, slow_qna, wechat):
    app = make_app(QNA_BACKEND=slow_qna, TEST_QNA_ANSWER="九月一日报到")
    started = time.monotonic()
    response = post(app.test_client(), text_xml("新生报到时间？", sender="o_asker"))
    assert response.data == b"success"
    assert time.monotonic() - started < 5
    sent = _wait_for_sent(wechat)
    assert len(sent) == 1
    assert sent[0]["touser"] == "o_asker"
    assert sent[0]["text"]["content"].startswith("九月一日报到")


def test_a_slow_question_gets_a_busy_reply_when_the_task_queue_is_full(
    make_app, slow_qna, wechat, log_records
):
    app = make_app(
        QNA_BACKEND=slow_qna, TEST_QNA_ANSWER="九月一日报到", TASK_WORKERS=1, TASK_QUEUE=1
    )
    release, busy = threading.Event(), threading.Event()

    def block() -> None:
        busy.set()
        release.wait(10)

    with app.app_context():
        assert tasks.submit("test.block", block) and busy.wait(5)
        assert tasks.submit("test.waiting", time.sleep, 0)
    try:
        client = app.test_client()
        started = time.monotonic()
        response = post(client, text_xml("新生报到时间？", sender="o_asker", msg_id="801"))
        assert time.monotonic() - started < 1
        assert reply_fields(response)["Content"] == BUSY_REPLY
        # A repeat delivery gets the same reply; the question is never answered twice.
        again = post(client, text_xml("新生报到时间？", sender="o_asker", msg_id="801"))
        assert reply_fields(again)["Content"] == BUSY_REPLY
    finally:
        release.set()
    assert app.extensions["berater.tasks"].wait_idle(5)
    assert wechat.fake.sent == []
    assert any(
        r.getMessage() == "task chat.answer dropped: the queue is full (1 waiting)"
        for r in log_records
    )


def test_a_long_slow_answer_is_cut_with_the_link(make_app, slow_qna, wechat):
    link = "https://berater.test/qna"
    app = make_app(QNA_BACKEND=slow_qna, WECHAT_QNA_NOT_READY="答" * 1000, WECHAT_ANSWER_URL=link)
    post(app.test_client(), text_xml("问题"))
    content = _wait_for_sent(wechat)[0]["text"]["content"]
    assert len(content.encode("utf-8")) <= 2048
    assert content.endswith(link)


def test_a_voice_with_recognition_is_answered_like_its_text(make_app, slow_qna, wechat):
    app = make_app(QNA_BACKEND=slow_qna)
    client = app.test_client()
    xml = event_xml("x").replace(
        "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[x]]></Event>",
        "<MsgType><![CDATA[voice]]></MsgType><MediaId>m</MediaId>"
        "<Recognition><![CDATA[报到时间]]></Recognition><MsgId>77</MsgId>",
    )
    assert post(client, xml).data == b"success"
    assert _wait_for_sent(wechat)[0]["text"]["content"] == app.config["WECHAT_QNA_NOT_READY"]


def test_a_voice_without_recognition_gets_the_default(app, client, wechat):
    xml = event_xml("x").replace(
        "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[x]]></Event>",
        "<MsgType><![CDATA[voice]]></MsgType><MediaId>m</MediaId><MsgId>78</MsgId>",
    )
    assert reply_fields(post(client, xml))["Content"] == app.config["WECHAT_DEFAULT_REPLY"]
    assert wechat.fake.sent == []


@pytest.mark.parametrize(
    "extra", [{}, {"EventKey": "qrscene_123123", "Ticket": "TICKET"}], ids=["plain", "qrcode"]
)
def test_subscribing_gets_the_welcome_text(app, client, extra):
    response = post(client, event_xml("subscribe", **extra))
    fields = reply_fields(response)
    assert fields["Content"] == app.config["WECHAT_WELCOME_TEXT"]
    assert fields["ToUserName"] == "o_user"
    assert fields["FromUserName"] == "gh_test"
    assert fields["MsgType"] == "text"


def test_the_student_number_item_shows_a_bound_students_number(app, client):
    with app.app_context():
        factories.student("o_bound", factories.source_student(stuid="202699999"))
        db.session.commit()
    response = post(client, event_xml("CLICK", sender="o_bound", EventKey="STUID"))
    assert reply_fields(response)["Content"] == "学号: 202699999"


def test_the_student_number_item_links_others_to_binding(make_app):
    client = make_app(WECHAT_BIND_URL="https://berater.test/bind").test_client()
    response = post(client, event_xml("CLICK", sender="o_stranger", EventKey="STUID"))
    assert "https://berater.test/bind" in reply_fields(response)["Content"]


def test_by_default_the_student_number_item_links_to_the_landing_by_type(make_app):
    client = make_app().test_client()  # SERVICE_BASE_URL http://localhost
    response = post(client, event_xml("CLICK", sender="o_stranger", EventKey="STUID"))
    assert reply_fields(response)["Content"].endswith("：http://localhost/?type=student")


def test_by_default_a_cut_reply_links_to_the_qna_page(make_app):
    client = make_app(WECHAT_WELCOME_TEXT="中" * 1000).test_client()
    content = reply_fields(post(client, event_xml("subscribe")))["Content"]
    assert content.endswith("…\nhttp://localhost/qna")


def test_the_student_number_key_comes_from_settings(make_app):
    client = make_app(WECHAT_STUID_KEY="MY_NUMBER").test_client()
    response = post(client, event_xml("CLICK", sender="o_stranger", EventKey="MY_NUMBER"))
    assert "绑定" in reply_fields(response)["Content"]


@pytest.mark.parametrize(
    ("event", "extra"),
    [
        ("VIEW", {"EventKey": "https://berater.test/"}),
        ("LOCATION", {"Latitude": "23.1", "Longitude": "113.3"}),
        ("unsubscribe", {}),
    ],
)
def test_events_that_need_no_answer_get_success(client, wechat, event, extra):
    response = post(client, event_xml(event, **extra))
    assert response.status_code == 200
    assert response.data == b"success"
    assert response.mimetype == "text/plain"


@pytest.mark.parametrize(
    "xml",
    [
        event_xml("CLICK", EventKey="SOMETHING_ELSE"),
        event_xml("SCAN", EventKey="SCENE"),
        text_xml("x").replace("[text]", "[image]"),
    ],
    ids=["other-click", "scan", "image"],
)
def test_anything_else_gets_the_polite_default(app, client, xml):
    assert reply_fields(post(client, xml))["Content"] == app.config["WECHAT_DEFAULT_REPLY"]


def test_a_reply_is_fast(client):
    started = time.monotonic()
    post(client, event_xml("subscribe"))
    assert time.monotonic() - started < 1


def test_the_store_down_is_503_without_the_envelope(make_app):
    make_app()  # the fixture empties the store of the first app: a reachable one
    app = make_app(REDIS_URL="redis://127.0.0.1:1/0", REDIS_SOCKET_TIMEOUT=0.2)
    started = time.monotonic()
    response = post(app.test_client(), event_xml("subscribe"))
    assert response.status_code == 503
    assert time.monotonic() - started < 1.0  # WeChat gives up at 5 s
    assert not response.is_json
