"""Signing webhook requests the way WeChat does, written apart from berater.chat.crypto."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from pathlib import Path
from urllib.parse import urlencode

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "wechat"
TOKEN = "dev-wechat-token"
APPID = "wx_dev_appid"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
OLD_AES_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"


def load(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def sha1_sorted(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()  # noqa: S324


def signed_query(token: str = TOKEN, timestamp: int | None = None, **extra: str) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    nonce = str(secrets.randbelow(10**9))
    return {"timestamp": ts, "nonce": nonce, "signature": sha1_sorted(token, ts, nonce), **extra}


def url(query: dict[str, str]) -> str:
    return "/chat/?" + urlencode(query)


def aes_encrypt(plaintext: str, key: str = AES_KEY, appid: str = APPID, pad_to: int = 32) -> str:
    raw = base64.b64decode(key + "=")
    body = plaintext.encode()
    data = secrets.token_bytes(16) + len(body).to_bytes(4, "big") + body + appid.encode()
    pad = pad_to - len(data) % pad_to
    data += bytes([pad]) * pad
    enc = Cipher(algorithms.AES(raw), modes.CBC(raw[:16])).encryptor()
    return base64.b64encode(enc.update(data) + enc.finalize()).decode()


def aes_decrypt(encrypted: str, key: str = AES_KEY) -> str:
    raw = base64.b64decode(key + "=")
    dec = Cipher(algorithms.AES(raw), modes.CBC(raw[:16])).decryptor()
    plain = dec.update(base64.b64decode(encrypted)) + dec.finalize()
    plain = plain[: -plain[-1]]
    size = int.from_bytes(plain[16:20], "big")
    return plain[20 : 20 + size].decode()


def safe_request(
    xml: str, key: str = AES_KEY, encrypted: str | None = None, **overrides: str
) -> tuple[str, bytes]:
    """The URL and body of a safe-mode delivery of `xml`."""
    enc = aes_encrypt(xml, key) if encrypted is None else encrypted
    query = signed_query(encrypt_type="aes")
    query["msg_signature"] = sha1_sorted(TOKEN, query["timestamp"], query["nonce"], enc)
    query.update(overrides)
    body = (
        "<xml><ToUserName><![CDATA[gh_test]]></ToUserName>"
        f"<Encrypt><![CDATA[{enc}]]></Encrypt></xml>"
    )
    return url(query), body.encode()


_seq = iter(range(10**6))


def text_xml(content: str, sender: str = "o_user", msg_id: str | None = None) -> str:
    msg_id = msg_id or str(6000000000000000000 + secrets.randbelow(10**15))
    return (
        "<xml><ToUserName><![CDATA[gh_test]]></ToUserName>"
        f"<FromUserName><![CDATA[{sender}]]></FromUserName>"
        f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId></xml>"
    )


def event_xml(event: str, sender: str = "o_user", created: int | None = None, **fields: str) -> str:
    created = created or int(time.time()) - next(_seq)  # distinct per call
    extra = "".join(f"<{k}><![CDATA[{v}]]></{k}>" for k, v in fields.items())
    return (
        "<xml><ToUserName><![CDATA[gh_test]]></ToUserName>"
        f"<FromUserName><![CDATA[{sender}]]></FromUserName><CreateTime>{created}</CreateTime>"
        f"<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[{event}]]></Event>{extra}</xml>"
    )


def post(client, xml: str | bytes, **query: str):
    body = xml.encode() if isinstance(xml, str) else xml
    return client.post(url(signed_query(**query)), data=body, content_type="text/xml")


def reply_fields(response) -> dict[str, str]:
    from defusedxml.ElementTree import fromstring

    return {child.tag: child.text or "" for child in fromstring(response.get_data())}
