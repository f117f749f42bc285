"""Reply XML, built with xml.etree (never string formatting), and WeChat's text limit.

ElementTree escapes `<`, `&` and `]]>` in text, so any content stays well-formed; characters
XML 1.0 cannot carry at all (most control characters) are dropped first.
"""

from __future__ import annotations

import re
import time
from xml.etree.ElementTree import Element, SubElement, tostring

TEXT_LIMIT = 2048  # bytes of UTF-8 WeChat accepts in a text reply or customer-service text
ELLIPSIS = "…"
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
SUCCESS = "success"  # the answer that tells WeChat "received, no reply"


def xml_safe(text: str) -> str:
    """`text` without the characters XML 1.0 forbids."""
    return _NOT_XML.sub("", text)


def fit_text(text: str, link: str = "", limit: int = TEXT_LIMIT) -> str:
    """`text` if it fits in `limit` UTF-8 bytes; otherwise cut at a character boundary,
    marked with an ellipsis and followed by `link` (where the full answer can be read)."""
    text = xml_safe(text)
    if len(text.encode("utf-8")) <= limit:
        return text
    tail = ELLIPSIS + (f"\n{link}" if link else "")
    room = limit - len(tail.encode("utf-8"))
    if room <= 0:
        raise ValueError("the link alone exceeds the text limit")
    # Cutting the bytes and dropping an incomplete last character keeps whole characters.
    head = text.encode("utf-8")[:room].decode("utf-8", errors="ignore")
    return head + tail


def _xml(children: list[tuple[str, str]]) -> str:
    root = Element("xml")
    for tag, value in children:
        SubElement(root, tag).text = xml_safe(value)
    return tostring(root, encoding="unicode")


def text_reply(to_user: str, from_account: str, content: str, now: int | None = None) -> str:
    """A passive text reply to `to_user` from the account `from_account`."""
    created = str(int(time.time()) if now is None else now)
    return _xml(
        [
            ("ToUserName", to_user),
            ("FromUserName", from_account),
            ("CreateTime", created),
            ("MsgType", "text"),
            ("Content", fit_text(content)),
        ]
    )


def encrypted_envelope(encrypted: str, signature: str, timestamp: str, nonce: str) -> str:
    """The safe-mode reply: the encrypted reply and its msg_signature."""
    return _xml(
        [
            ("Encrypt", encrypted),
            ("MsgSignature", signature),
            ("TimeStamp", timestamp),
            ("Nonce", nonce),
        ]
    )
