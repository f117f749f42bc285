"""The chat stand-in (WeChat's side of the webhook): published vectors, then round trips."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from standins import chat
from standins.wechat import RunningWeChat

ROOT = Path(__file__).resolve().parent.parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "wechat" / "crypto_cases.json"
CASES = json.loads(FIXTURES.read_text(encoding="utf-8"))["crypto_cases"]
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
APPID = "wx_chat_standin_appid"


def cases(kind: str) -> list[dict[str, Any]]:
    return [case for case in CASES if case["kind"] == kind]


# --------------------------------------------------------------------------- vectors


@pytest.mark.parametrize("case", cases("encrypt_deterministic"), ids=lambda c: c["id"])
def test_encryption_matches_published_vectors(case: dict[str, Any]) -> None:
    encrypted = chat.encrypt(
        case["encoding_aes_key"],
        case["receive_id"],
        case["plaintext"],
        random16=case["random16"].encode(),
    )
    assert encrypted == case["expected"]["encrypt"]
    query = case["query"]
    signed = chat.signature(case["token"], query["timestamp"], query["nonce"], encrypted)
    assert signed == query["msg_signature"]


@pytest.mark.parametrize("case", cases("decrypt_message"), ids=lambda c: c["id"])
def test_decryption_matches_published_vectors(case: dict[str, Any]) -> None:
    plain = chat.decrypt(case["encoding_aes_key"], case["receive_id"], case["encrypt"])
    assert plain == case["expected"]["decrypted_xml"]


PLAIN_CASES = json.loads(FIXTURES.read_text(encoding="utf-8"))["plain_signature_cases"]


@pytest.mark.parametrize("case", PLAIN_CASES, ids=lambda c: c["id"])
def test_plain_signature_matches_published_handshakes(case: dict[str, Any]) -> None:
    signed = chat.signature(case["token"], case["timestamp"], case["nonce"])
    assert (signed == case["signature"]) is case["expected_valid"]


def test_padding_runs_to_a_whole_32_byte_block() -> None:
    # 16 + 4 + 12 + 0 = 32 bytes: already aligned, so a full block of 32 padding bytes.
    encrypted = chat.encrypt(AES_KEY, "", "x" * 12, random16=b"r" * 16)
    assert len(chat.base64.b64decode(encrypted)) == 64
    assert chat.decrypt(AES_KEY, "", encrypted) == "x" * 12


def test_decrypt_refuses_another_appid_and_tampering() -> None:
    encrypted = chat.encrypt(AES_KEY, APPID, "<xml/>")
    with pytest.raises(chat.ProtocolError, match="another appid"):
        chat.decrypt(AES_KEY, "wx_other", encrypted)
    raw = bytearray(chat.base64.b64decode(encrypted))
    raw[-1] ^= 0xFF
    with pytest.raises(chat.ProtocolError):
        chat.decrypt(AES_KEY, APPID, chat.base64.b64encode(bytes(raw)).decode())
    with pytest.raises(chat.ProtocolError, match="base64"):
        chat.decrypt(AES_KEY, APPID, "not base64!")


def test_reply_with_a_wrong_msg_signature_is_refused() -> None:
    settings = chat.Settings("tok", APPID, AES_KEY)
    encrypted = chat.encrypt(AES_KEY, APPID, "<xml><Content>hi</Content></xml>")
    body = (
        f"<xml><Encrypt>{encrypted}</Encrypt><MsgSignature>{'0' * 40}</MsgSignature>"
        "<TimeStamp>1</TimeStamp><Nonce>2</Nonce></xml>"
    )
    with pytest.raises(chat.ProtocolError, match="MsgSignature"):
        chat.read_reply(body, settings, safe=True)
    good = body.replace("0" * 40, chat.signature("tok", "1", "2", encrypted))
    assert chat.read_reply(good, settings, safe=True) == {"Content": "hi"}


def test_messages_are_wechat_push_xml() -> None:
    text = chat.parse_fields(chat.build_message("o_1", "gh_x", content="你好", msg_id=7))
    assert text["FromUserName"] == "o_1" and text["MsgType"] == "text"
    assert text["Content"] == "你好" and text["MsgId"] == "7"
    event = chat.parse_fields(chat.build_message("o_1", event="CLICK", event_key="STUID"))
    assert (event["MsgType"], event["Event"], event["EventKey"]) == ("event", "CLICK", "STUID")
    assert "MsgId" not in event


# --------------------------------------------------------------------------- round trips


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    """The app with safe mode configured; conftest's live_server serves this one."""
    return make_app(WECHAT_AES_KEY=AES_KEY)


@pytest.fixture
def chat_app(app: Flask) -> Flask:
    return app


@pytest.fixture
def chat_server(live_server: str) -> str:
    return live_server


def settings_of(app: Flask) -> chat.Settings:
    cfg = app.config
    return chat.Settings(cfg["WECHAT_TOKEN"], cfg["WECHAT_APPID"], cfg["WECHAT_AES_KEY"])


@pytest.mark.backends
@pytest.mark.parametrize("safe", [False, True], ids=["plaintext", "safe"])
def test_subscribe_gets_the_welcome_text(chat_app: Flask, chat_server: str, safe: bool) -> None:
    xml = chat.build_message("o_chat_newcomer", event="subscribe")
    status, reply = chat.post(chat_server, xml, "o_chat_newcomer", settings_of(chat_app), safe)
    assert status == 200
    assert reply["MsgType"] == "text"
    assert reply["ToUserName"] == "o_chat_newcomer"
    assert reply["Content"] == chat_app.config["WECHAT_WELCOME_TEXT"]


@pytest.mark.backends
@pytest.mark.parametrize("safe", [False, True], ids=["plaintext", "safe"])
def test_text_question_is_answered_in_the_reply(
    chat_app: Flask, chat_server: str, wechat: RunningWeChat, safe: bool
) -> None:
    openid = f"o_chat_asker_{int(safe)}"
    xml = chat.build_message(openid, content="报到需要带什么？")
    status, reply = chat.post(chat_server, xml, openid, settings_of(chat_app), safe)
    assert status == 200
    # The Q&A backend answers fast: inside the reply, nothing sent through the API.
    assert reply["Content"] == chat_app.config["WECHAT_QNA_NOT_READY"]
    assert wechat.fake.sent == []


@pytest.mark.backends
def test_menu_click_is_answered_in_the_reply(chat_app: Flask, chat_server: str) -> None:
    xml = chat.build_message("o_chat_unbound", event="CLICK", event_key="STUID")
    status, reply = chat.post(chat_server, xml, "o_chat_unbound", settings_of(chat_app), True)
    assert status == 200
    assert "绑定" in reply["Content"]


@pytest.mark.backends
def test_wrong_token_is_refused_by_the_service(chat_app: Flask, chat_server: str) -> None:
    settings = settings_of(chat_app)
    settings.token = "not-the-token"
    xml = chat.build_message("o_chat_student", content="你好")
    status, reply = chat.post(chat_server, xml, "o_chat_student", settings, safe=False)
    assert status == 403 and reply == {}


@pytest.mark.backends
def test_command_prints_the_decrypted_reply(chat_app: Flask, chat_server: str) -> None:
    command = [sys.executable, "-m", "standins.chat", "--url", chat_server, "--safe"]
    cfg = chat_app.config
    command += [
        "--token",
        cfg["WECHAT_TOKEN"],
        "--appid",
        cfg["WECHAT_APPID"],
        "--aes-key",
        AES_KEY,
    ]
    done = subprocess.run(
        [*command, "--event", "subscribe"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == chat_app.config["WECHAT_WELCOME_TEXT"].strip()
    usage = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert usage.returncode == 2 and "exactly one of" in usage.stderr
