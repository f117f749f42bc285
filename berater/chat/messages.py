"""Parsing pushed XML: defusedxml with DTDs, entities and external references forbidden.

The body must be UTF-8 (WeChat sends nothing else) and at most MAX_BODY bytes; a parsed
message is a flat map of the root's children, CDATA unwrapped, as the official docs print it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from xml.etree.ElementTree import ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from berater.errors import BadRequest

MAX_BODY = 64 * 1024  # SECURITY.md: webhook body 64 KiB
MAX_FIELDS = 64
# Names WeChat uses for message types and events: short, ASCII, no markup.
NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,31}$")
OPENID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class MalformedMessage(BadRequest):
    """The body is not a message this webhook can read."""

    message = "the message could not be read"


def parse_xml(body: bytes | str) -> dict[str, str]:
    """The children of the root `<xml>` as {tag: text}; MalformedMessage on anything unsafe."""
    if isinstance(body, bytes):
        if len(body) > MAX_BODY:
            raise MalformedMessage("the message is too large")
        try:
            # Decoded first, so an XML declaration cannot switch the parser to another charset.
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedMessage("the message is not UTF-8") from None
    else:
        text = body
    if not text.strip():
        raise MalformedMessage("the message is empty")
    try:
        root = fromstring(text, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (ParseError, DefusedXmlException, ValueError):
        raise MalformedMessage() from None
    if root.tag != "xml" or len(root) > MAX_FIELDS:
        raise MalformedMessage()
    return {child.tag: child.text or "" for child in root}


@dataclass(frozen=True)
class Message:
    """One pushed message or event, with the fields every message carries checked."""

    fields: dict[str, str]

    @property
    def msg_type(self) -> str:
        return self.fields["MsgType"]

    @property
    def event(self) -> str | None:
        return self.fields.get("Event") if self.msg_type == "event" else None

    @property
    def event_key(self) -> str:
        return self.fields.get("EventKey", "")

    @property
    def sender(self) -> str:
        """The user's openid."""
        return self.fields["FromUserName"]

    @property
    def account(self) -> str:
        """The service account's own id (gh_...)."""
        return self.fields["ToUserName"]

    @property
    def create_time(self) -> int:
        return int(self.fields["CreateTime"])

    @property
    def msg_id(self) -> str | None:
        return self.fields.get("MsgId") or None

    @property
    def dedupe_key(self) -> str:
        """MsgId, or for events (which have none) FromUserName+CreateTime."""
        return f"id:{self.msg_id}" if self.msg_id else f"ev:{self.sender}:{self.create_time}"


def parse_message(body: bytes | str) -> Message:
    """Parse a plaintext message and check its common fields."""
    return to_message(parse_xml(body))


def to_message(fields: dict[str, str]) -> Message:
    """Check the fields every message carries; MalformedMessage names what is wrong."""
    msg_type = fields.get("MsgType", "").strip()
    if not msg_type:
        raise MalformedMessage("the message has no MsgType")
    if not NAME_RE.match(msg_type):
        raise MalformedMessage("the message has an invalid MsgType")
    if not OPENID_RE.match(fields.get("FromUserName", "")):
        raise MalformedMessage("the message has no valid FromUserName")
    if not fields.get("ToUserName", "").strip():
        raise MalformedMessage("the message has no ToUserName")
    created = fields.get("CreateTime", "")
    if not (created.isascii() and created.isdigit() and len(created) <= 12):
        raise MalformedMessage("the message has no valid CreateTime")
    msg_id = fields.get("MsgId", "")
    if msg_id and not (msg_id.isascii() and msg_id.isdigit() and len(msg_id) <= 32):
        raise MalformedMessage("the message has an invalid MsgId")
    if msg_type == "event" and not NAME_RE.match(fields.get("Event", "")):
        raise MalformedMessage("the event has no valid Event")
    clean = {**fields, "MsgType": msg_type}
    return Message(clean)
