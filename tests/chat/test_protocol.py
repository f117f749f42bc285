"""The published WeChat vectors: every crypto case, every signature case, every sample message."""

from __future__ import annotations

import pytest

from berater.chat import crypto
from berater.chat.messages import MalformedMessage, parse_message, parse_xml
from tests.chat.helpers import load

CASES = load("crypto_cases.json")["crypto_cases"]
SIGNATURES = load("crypto_cases.json")["plain_signature_cases"]
MESSAGES = load("messages.json")["messages"]


def _of(kind: str) -> list:
    return [pytest.param(c, id=c["id"]) for c in CASES if c["kind"] == kind]


def _decrypt(case: dict) -> str:
    encrypted = parse_xml(case["post_body"])["Encrypt"]
    query = case["query"]
    plain, key = crypto.decrypt_message(
        case["token"],
        [case["encoding_aes_key"]],
        case["receive_id"],
        query["msg_signature"],
        query["timestamp"],
        query["nonce"],
        encrypted,
    )
    assert key == case["encoding_aes_key"]
    return plain


@pytest.mark.parametrize("case", _of("decrypt_message"))
def test_a_published_message_decrypts_byte_for_byte(case):
    plain = _decrypt(case)
    assert plain == case["expected"]["decrypted_xml"]
    assert parse_xml(plain) == case["expected"]["fields"]


@pytest.mark.parametrize("case", _of("encrypt_deterministic"))
def test_encryption_with_the_published_random_prefix_matches_exactly(case):
    encrypted, signature = crypto.encrypt_message(
        case["token"],
        case["encoding_aes_key"],
        case["receive_id"],
        case["plaintext"],
        case["query"]["timestamp"],
        case["query"]["nonce"],
        random16=case["random16"].encode(),
    )
    assert encrypted == case["expected"]["encrypt"]
    assert signature == case["query"]["msg_signature"]
    back = crypto.decrypt(case["encoding_aes_key"], case["receive_id"], encrypted)
    assert back == case["plaintext"]


@pytest.mark.parametrize("case", _of("verify_url_echostr"))
def test_an_encrypted_url_check_gives_the_published_echo(case):
    query = case["query"]
    echo = crypto.verify_url(
        case["token"],
        case["encoding_aes_key"],
        case["receive_id"],
        query["msg_signature"],
        query["timestamp"],
        query["nonce"],
        query["echostr"],
    )
    assert echo == case["expected"]["echo_plaintext"]


@pytest.mark.parametrize("case", _of("decrypt_only"))
def test_the_access_guide_ciphertext_decrypts(case):
    plain = crypto.decrypt(case["encoding_aes_key"], case["receive_id"], case["encrypt"])
    assert plain == case["expected"]["decrypted_xml"]


@pytest.mark.parametrize("case", _of("reject"))
def test_a_published_bad_case_is_refused_for_its_reason(case):
    with pytest.raises(crypto.CryptoError) as refused:
        _decrypt(case)
    assert refused.value.reason == case["expected"]["error"]


@pytest.mark.parametrize("case", [pytest.param(c, id=c["id"]) for c in SIGNATURES])
def test_a_plain_signature_is_checked_as_published(case):
    valid = crypto.check_signature(
        case["token"], case["signature"], case["timestamp"], case["nonce"]
    )
    assert valid is case["expected_valid"]


def test_an_empty_token_never_matches():
    assert crypto.check_signature("", crypto.sign("", "1", "2"), "1", "2") is False


def test_a_non_ascii_signature_is_refused_not_an_error():
    assert crypto.check_signature("t", "签名", "1", "2") is False


@pytest.mark.parametrize("sample", [pytest.param(m, id=m["name"]) for m in MESSAGES])
def test_every_documented_message_parses_to_its_fields(sample):
    message = parse_message(sample["xml"])
    assert message.fields == sample["expected_fields"]
    assert message.msg_type == sample["expected_msg_type"]
    assert message.event == sample["expected_event"]
    assert message.create_time == sample["expected_create_time_int"]
    expected_id = sample["expected_msg_id_int"]
    assert message.msg_id == (str(expected_id) if expected_id is not None else None)


OA = CASES[0]


def _tampered(raw: bytes) -> str:
    import base64

    return base64.b64encode(raw).decode()


@pytest.mark.parametrize(
    ("encrypted", "reason"),
    [
        ("not base64!!", "invalid_base64"),
        ("", "invalid_length"),
        (_tampered(b"x" * 20), "invalid_length"),  # not whole AES blocks
    ],
)
def test_a_broken_ciphertext_is_refused(encrypted, reason):
    with pytest.raises(crypto.CryptoError) as refused:
        crypto.decrypt(OA["encoding_aes_key"], OA["receive_id"], encrypted)
    assert refused.value.reason == reason


def _encrypt_raw(key: str, data: bytes) -> str:
    import base64

    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    raw = base64.b64decode(key + "=")
    enc = Cipher(algorithms.AES(raw), modes.CBC(raw[:16])).encryptor()
    return base64.b64encode(enc.update(data) + enc.finalize()).decode()


def test_bad_padding_is_refused():
    key = OA["encoding_aes_key"]
    data = b"r" * 16 + (3).to_bytes(4, "big") + b"abc" + b"wxid" + b"\x00" * 5  # 32 bytes
    with pytest.raises(crypto.CryptoError) as refused:
        crypto.decrypt(key, "wxid", _encrypt_raw(key, data))
    assert refused.value.reason == "invalid_padding"


def test_a_length_beyond_the_message_is_refused():
    key = OA["encoding_aes_key"]
    data = b"r" * 16 + (9999).to_bytes(4, "big") + b"abc" + b"wxid"
    data += bytes([32 - len(data) % 32]) * (32 - len(data) % 32)
    with pytest.raises(crypto.CryptoError) as refused:
        crypto.decrypt(key, "wxid", _encrypt_raw(key, data))
    assert refused.value.reason == "invalid_length"


def test_a_bad_key_setting_is_refused():
    with pytest.raises(crypto.CryptoError) as refused:
        crypto.decrypt("short", "wxid", OA["encrypt"])
    assert refused.value.reason == "invalid_key"


def test_the_previous_key_opens_a_message_and_is_reported():
    case = CASES[4]  # another key and appid: the WeCom sample
    plain, key = crypto.decrypt_any(
        [OA["encoding_aes_key"], case["encoding_aes_key"]], case["receive_id"], case["encrypt"]
    )
    assert plain == case["expected"]["decrypted_xml"]
    assert key == case["encoding_aes_key"]


@pytest.mark.parametrize(
    "body",
    [
        b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>'
        b"<xml><Content>&b;</Content></xml>",
        b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><Content>&e;</Content></xml>',
        b'<!DOCTYPE xml SYSTEM "http://127.0.0.1:1/x.dtd"><xml/>',
        b"<xml><Content>\xff\xfe</Content></xml>",
        b"<xml><Content>cut",
        b"<notxml/>",
        b"",
        b"x" * (64 * 1024 + 1),
    ],
    ids=["expansion", "external", "dtd", "not-utf8", "truncated", "other-root", "empty", "big"],
)
def test_an_unsafe_or_broken_body_is_refused_by_the_parser(body):
    with pytest.raises(MalformedMessage):
        parse_xml(body)
