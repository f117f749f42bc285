"""Reply XML and WeChat's text limit.

A reply is a flat `<xml>` of fixed tag names; every value goes through one function,
`_element`, which drops the characters XML 1.0 cannot carry at all (most control characters)
and escapes `&`, `<` and `>` (so `]]>` too), exactly as ElementTree serialises text: any
content stays well-formed. Joining the escaped parts costs a few microseconds where building
and serialising an ElementTree cost about fifteen (tests/chat/test_replies.py compares the two).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from xml.sax.saxutils import escape

TEXT_LIMIT = 2048  # bytes of UTF-8 WeChat accepts in a text reply or customer-service text
ELLIPSIS = "…"
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
SUCCESS = "success"  # the answer that tells WeChat "received, no reply"


def xml_safe(text: str) -> str:
    """`text` without the characters XML 1.0 forbids."""
    return _NOT_XML.sub("", text)


def fit_text(text: str, link: str | Callable[[], str] = "", limit: int = TEXT_LIMIT) -> str:
    """`text` if it fits in `limit` UTF-8 bytes; otherwise cut at a character boundary,
    marked with an ellipsis and followed by `link` (where the full answer can be read; a
    function giving it is only called when the text is cut)."""
    text = xml_safe(text)
    if len(text.encode("utf-8")) <= limit:
        return text
    if callable(link):
        link = link()
    tail = ELLIPSIS + (f"\n{link}" if link else "")
    room = limit - len(tail.encode("utf-8"))
    if room <= 0:
        raise ValueError("the link alone exceeds the text limit")
    # Cutting the bytes and dropping an incomplete last character keeps whole characters.
    head = text.encode("utf-8")[:room].decode("utf-8", errors="ignore")
    return head + tail


def _element(tag: str, value: str) -> str:
    """`<tag>value</tag>`, the value made safe and escaped (`tag` is one of ours)."""
    value = xml_safe(value)
    return f"<{tag}>{escape(value)}</{tag}>" if value else f"<{tag} />"


def _xml(children: list[tuple[str, str]]) -> str:
    return "<xml>" + "".join([_element(tag, value) for tag, value in children]) + "</xml>"


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
