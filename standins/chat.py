"""WeChat's side of the webhook: post a signed (optionally encrypted) message to /chat/.

    python -m standins.chat --url http://127.0.0.1:5000 --openid o_dev_student "你好"
    python -m standins.chat --safe --event subscribe
    python -m standins.chat --click STUID

It plays the WeChat platform, so it implements the protocol itself and never imports
berater.chat: an independent implementation catches mistakes on either side.

Plaintext mode: the query carries `signature` = sha1 of the sorted [token, timestamp, nonce].
Safe mode (`encrypt_type=aes`): the body is `<xml><ToUserName/><Encrypt/></xml>`, where
Encrypt = base64(AES-256-CBC(random 16 bytes + 4-byte big-endian length + message + appid)),
key = b64decode(EncodingAESKey + "="), IV = key[:16], PKCS#7 padded to 32-byte blocks, and
`msg_signature` = sha1 of the sorted [token, timestamp, nonce, Encrypt].
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import hmac
import secrets
import struct
import sys
import time
import xml.etree.ElementTree as ET  # builds XML only; replies are parsed with defusedxml
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import requests
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from defusedxml import ElementTree as SafeET

BLOCK = 32  # WeChat pads to 32 bytes, not AES's 16
DEFAULT_TO = "gh_berater_dev"  # the account's own id (ToUserName); WeChat sends gh_...
TIMEOUT = (2.0, 6.0)  # WeChat gives a webhook 5 s; a little more to see a late answer


class ProtocolError(ValueError):
    """The service's answer does not follow WeChat's protocol (bad signature, appid, padding)."""


# --------------------------------------------------------------------------- signing


def signature(token: str, timestamp: str, nonce: str, *extra: str) -> str:
    """sha1 hex of the sorted strings: `signature` (3 values) or `msg_signature` (+ Encrypt)."""
    return hashlib.sha1("".join(sorted([token, timestamp, nonce, *extra])).encode()).hexdigest()  # noqa: S324 - WeChat's protocol


# --------------------------------------------------------------------------- AES


def aes_key(encoding_aes_key: str) -> bytes:
    """The 32-byte key from a 43-character EncodingAESKey."""
    if len(encoding_aes_key) != 43:
        raise ValueError("an EncodingAESKey has 43 characters")
    try:
        key = base64.b64decode(encoding_aes_key + "=", validate=True)
    except binascii.Error:
        raise ValueError("the EncodingAESKey is not base64") from None
    if len(key) != 32:
        raise ValueError("the EncodingAESKey does not decode to 32 bytes")
    return key


def _cipher(key: bytes) -> Cipher[modes.CBC]:
    return Cipher(algorithms.AES(key), modes.CBC(key[:16]))


def encrypt(
    encoding_aes_key: str, appid: str, message: str | bytes, random16: bytes | None = None
) -> str:
    """Encrypt `message` for `appid` as WeChat does; `random16` is forced only by tests."""
    key = aes_key(encoding_aes_key)
    body = message.encode() if isinstance(message, str) else message
    prefix = secrets.token_bytes(16) if random16 is None else random16
    if len(prefix) != 16:
        raise ValueError("the random prefix has 16 bytes")
    plain = prefix + struct.pack(">I", len(body)) + body + appid.encode()
    pad = BLOCK - len(plain) % BLOCK  # 1..32: a full block of padding when already aligned
    plain += bytes([pad]) * pad
    encryptor = _cipher(key).encryptor()
    return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()


def decrypt(encoding_aes_key: str, appid: str, encrypted: str) -> str:
    """The message inside `encrypted`; ProtocolError on bad base64, padding, length or appid."""
    key = aes_key(encoding_aes_key)
    try:
        raw = base64.b64decode(encrypted, validate=True)
    except binascii.Error:
        raise ProtocolError("Encrypt is not base64") from None
    if not raw or len(raw) % 16:
        raise ProtocolError("Encrypt is not whole AES blocks")
    decryptor = _cipher(key).decryptor()
    plain = decryptor.update(raw) + decryptor.finalize()
    pad = plain[-1]
    if not 1 <= pad <= BLOCK or plain[-pad:] != bytes([pad]) * pad:
        raise ProtocolError("bad PKCS#7 padding")
    plain = plain[:-pad]
    if len(plain) < 20:
        raise ProtocolError("the decrypted message is too short")
    (length,) = struct.unpack(">I", plain[16:20])
    message, receive_id = plain[20 : 20 + length], plain[20 + length :]
    if len(message) != length:
        raise ProtocolError("the length prefix is longer than the message")
    if not hmac.compare_digest(receive_id, appid.encode()):
        raise ProtocolError("the message is for another appid")
    try:
        return message.decode()
    except UnicodeDecodeError:
        raise ProtocolError("the message is not UTF-8") from None


# --------------------------------------------------------------------------- messages


def build_message(
    openid: str,
    to_user: str = DEFAULT_TO,
    *,
    content: str | None = None,
    event: str | None = None,
    event_key: str | None = None,
    msg_id: int | None = None,
    create_time: int | None = None,
) -> str:
    """The push XML WeChat sends: a text message (`content`) or an event (`event`)."""
    root = ET.Element("xml")
    fields: list[tuple[str, str]] = [
        ("ToUserName", to_user),
        ("FromUserName", openid),
        ("CreateTime", str(int(time.time()) if create_time is None else create_time)),
    ]
    if event is not None:
        fields += [("MsgType", "event"), ("Event", event)]
        if event_key is not None:
            fields.append(("EventKey", event_key))
    else:
        fields += [("MsgType", "text"), ("Content", content or "")]
        fields.append(("MsgId", str(msg_id if msg_id is not None else secrets.randbits(63))))
    for tag, text in fields:
        ET.SubElement(root, tag).text = text
    return ET.tostring(root, encoding="unicode")


def envelope(to_user: str, encrypted: str) -> str:
    """The safe-mode body: the account id and the Encrypt value."""
    root = ET.Element("xml")
    ET.SubElement(root, "ToUserName").text = to_user
    ET.SubElement(root, "Encrypt").text = encrypted
    return ET.tostring(root, encoding="unicode")


@dataclass
class Settings:
    """What WeChat and the service share: the webhook token, EncodingAESKey and appid."""

    token: str
    appid: str
    aes_key: str = ""


def signed_request(
    xml: str,
    openid: str,
    settings: Settings,
    safe: bool,
    to_user: str = DEFAULT_TO,
    timestamp: str | None = None,
    nonce: str | None = None,
) -> tuple[dict[str, str], str]:
    """(query, body) of WeChat's POST for `xml`, signed and, in safe mode, encrypted."""
    timestamp = timestamp or str(int(time.time()))
    nonce = nonce or str(secrets.randbelow(10**10))
    query = {
        "signature": signature(settings.token, timestamp, nonce),
        "timestamp": timestamp,
        "nonce": nonce,
        "openid": openid,
    }
    if not safe:
        return query, xml
    encrypted = encrypt(settings.aes_key, settings.appid, xml)
    query["encrypt_type"] = "aes"
    query["msg_signature"] = signature(settings.token, timestamp, nonce, encrypted)
    return query, envelope(to_user, encrypted)


def read_reply(text: str, settings: Settings, safe: bool) -> dict[str, str]:
    """The reply's fields (decrypted and its MsgSignature checked in safe mode); {} for
    WeChat's "no reply" answers (empty or `success`)."""
    if text.strip() in {"", "success"}:
        return {}
    fields = parse_fields(text)
    if safe and "Encrypt" in fields:
        expected = signature(
            settings.token, fields.get("TimeStamp", ""), fields.get("Nonce", ""), fields["Encrypt"]
        )
        if not hmac.compare_digest(expected, fields.get("MsgSignature", "")):
            raise ProtocolError("the reply's MsgSignature does not match")
        fields = parse_fields(decrypt(settings.aes_key, settings.appid, fields["Encrypt"]))
    elif safe:
        raise ProtocolError("safe mode, but the reply is not encrypted")
    return fields


def parse_fields(xml: str) -> dict[str, str]:
    """The child elements of an XML message (defusedxml: no DTDs, no entities)."""
    try:
        root = SafeET.fromstring(xml, forbid_dtd=True)
    except SafeET.ParseError as exc:
        raise ProtocolError(f"the reply is not XML: {exc}") from None
    return {child.tag: child.text or "" for child in root}


def post(
    url: str,
    xml: str,
    openid: str,
    settings: Settings,
    safe: bool,
    to_user: str = DEFAULT_TO,
    session: requests.Session | None = None,
) -> tuple[int, dict[str, str]]:
    """POST `xml` to the service's /chat/ as WeChat would: (HTTP status, reply fields)."""
    query, body = signed_request(xml, openid, settings, safe, to_user)
    sender = session or requests
    response = sender.post(
        url.rstrip("/") + "/chat/",
        params=query,
        data=body.encode(),
        headers={"Content-Type": "text/xml; charset=utf-8"},
        timeout=TIMEOUT,
    )
    if response.status_code != 200:
        return response.status_code, {}
    return 200, read_reply(response.content.decode("utf-8", "replace"), settings, safe)


# --------------------------------------------------------------------------- command


def _defaults() -> Mapping[str, str]:
    """Token, appid and AES key from the service's settings (environment and .env): a
    development service's unless BERATER_ENV says otherwise (unset means production to the
    service, but this stand-in plays WeChat for a service run locally)."""
    import os
    from pathlib import Path

    from dotenv import load_dotenv

    from berater.settings import load_config

    load_dotenv(Path.cwd() / ".env", override=False)
    cfg = load_config(os.environ.get("BERATER_ENV", "").strip() or "development")
    return {
        "token": cfg["WECHAT_TOKEN"],
        "appid": cfg["WECHAT_APPID"],
        "aes_key": cfg["WECHAT_AES_KEY"],
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Send one message or event and print the service's reply."""
    parser = argparse.ArgumentParser(description="Play WeChat: post a message to /chat/.")
    parser.add_argument("text", nargs="?", help="a text message")
    parser.add_argument("--url", default="http://127.0.0.1:5000", help="the service's base URL")
    parser.add_argument("--openid", default="o_dev_student", help="who sends (FromUserName)")
    parser.add_argument("--to", default=DEFAULT_TO, help="the account's id (ToUserName)")
    parser.add_argument("--safe", action="store_true", help="encrypt (safe mode)")
    parser.add_argument("--event", help="an event instead: subscribe, unsubscribe, ...")
    parser.add_argument("--click", metavar="KEY", help="a menu CLICK event with this key")
    parser.add_argument("--token", help="webhook token (default: WECHAT_TOKEN)")
    parser.add_argument("--appid", help="appid (default: WECHAT_APPID)")
    parser.add_argument("--aes-key", help="EncodingAESKey (default: WECHAT_AES_KEY)")
    args = parser.parse_args(argv)
    if sum(x is not None for x in (args.text, args.event, args.click)) != 1:
        parser.error("give exactly one of: a text, --event or --click")
    defaults = _defaults()
    settings = Settings(
        token=args.token or defaults["token"],
        appid=args.appid or defaults["appid"],
        aes_key=args.aes_key or defaults["aes_key"],
    )
    if args.safe and not settings.aes_key:
        parser.error("--safe needs an EncodingAESKey: --aes-key or WECHAT_AES_KEY")
    if args.click is not None:
        xml = build_message(args.openid, args.to, event="CLICK", event_key=args.click)
    elif args.event is not None:
        xml = build_message(args.openid, args.to, event=args.event)
    else:
        xml = build_message(args.openid, args.to, content=args.text)
    try:
        status, reply = post(args.url, xml, args.openid, settings, args.safe, args.to)
    except (requests.RequestException, ProtocolError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"the service answered HTTP {status}", file=sys.stderr)
        return 1
    if not reply:
        print("(no reply: the service answered success)")
    elif reply.get("MsgType") == "text":
        print(reply.get("Content", ""))
    else:
        print("\n".join(f"{key}: {value}" for key, value in reply.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
