"""The one table from message types, events and menu keys to handlers.

A key is (MsgType, None), (MsgType, Event) or (MsgType, Event, EventKey); the most specific
match wins, and anything unmatched gets the polite default. A handler returns the reply text,
or None for no reply (`success`). A route marked `slow` is answered with `success` at once and
its text is sent later through the customer-service API (berater/chat/services.py).

A route marked `pure` has no side effects (it only reads), so a repeat delivery may run it
again: services.respond then answers first and keeps the first reply in one store round trip.
Every other route, and any route while it is slow (its reply is a message sent), is claimed
before it runs, so that it runs once per message.

To add a route: write a handler here and add one line to `table()`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flask import current_app

from berater.chat.messages import Message
from berater.chat.replies import fit_text
from berater.db import db
from berater.extensions import qna
from berater.models import SourceStudent, Student
from berater.pages import links
from berater.qna.answers import answer_url

Handler = Callable[[Message], str | None]
RouteKey = tuple[str, str | None] | tuple[str, str, str]
MAX_QUESTION = 200  # characters sent to the Q&A engine (SECURITY.md: `q` 200 characters)


@dataclass(frozen=True)
class Route:
    handler: Handler
    # May take longer than WeChat's 5 s: answered through the API. A callable decides per
    # message, e.g. only when the configured Q&A backend is a slow one.
    slow: bool | Callable[[], bool] = False
    when: Callable[[Message], bool] | None = None  # the route applies only if this holds
    # Only reads (no message sent, nothing written): safe to run again for a repeat delivery.
    # Leave False for anything with a side effect; it is then claimed before it runs.
    pure: bool = False

    def applies(self, message: Message) -> bool:
        return self.when is None or self.when(message)

    def is_slow(self) -> bool:
        return self.slow() if callable(self.slow) else self.slow


def _setting(name: str) -> str:
    return str(current_app.config.get(name) or "")


def no_reply(message: Message) -> str | None:
    """Nothing to say (menu links, location reports, unsubscribing)."""
    return None


def welcome(message: Message) -> str | None:
    """The welcome text, for a new follower (also one who came through a QR code)."""
    return _setting("WECHAT_WELCOME_TEXT")


def default_reply(message: Message) -> str | None:
    """The polite answer to anything without a route of its own."""
    return _setting("WECHAT_DEFAULT_REPLY")


def answer(question: str) -> str:
    """The Q&A bot's best answer to `question`, fitted to WeChat's text limit."""
    question = question.strip()[:MAX_QUESTION]
    found = qna.answer(question) if question else None
    if not found:
        return fit_text(_setting("WECHAT_QNA_NOT_READY"), links.answer_url)
    return fit_text(found, lambda: answer_url(question))


def question(message: Message) -> str | None:
    """A text message, or a voice message WeChat transcribed: ask the Q&A bot."""
    text = message.fields.get("Content") or message.fields.get("Recognition") or ""
    return answer(text)


def qna_is_slow() -> bool:
    """A fast backend answers inside the reply; a slow one (BERT) through the API later."""
    return qna.slow


def recognised(message: Message) -> bool:
    """A voice message WeChat transcribed (speech recognition is on for the account)."""
    return bool(message.fields.get("Recognition", "").strip())


def student_number(message: Message) -> str | None:
    """The student-number menu item: "学号: …" for a bound student, else a link to bind."""
    student = db.session.get(Student, message.sender)
    source = db.session.get(SourceStudent, student.id_card) if student else None
    if source is None:
        return f"你还没有绑定学生身份，请先绑定：{links.bind_url()}"
    return f"学号: {source.stuid or '尚未分配'}"


def table() -> dict[RouteKey, Route]:
    """Every route; the menu key of the student-number item comes from settings."""
    return {
        ("text", None): Route(question, slow=qna_is_slow, pure=True),
        ("voice", None): Route(question, slow=qna_is_slow, when=recognised, pure=True),
        ("event", "subscribe"): Route(welcome, pure=True),
        ("event", "unsubscribe"): Route(no_reply, pure=True),
        ("event", "VIEW"): Route(no_reply, pure=True),
        ("event", "LOCATION"): Route(no_reply, pure=True),
        ("event", "CLICK", _setting("WECHAT_STUID_KEY")): Route(student_number, pure=True),
    }


DEFAULT = Route(default_reply, pure=True)


def route_for(message: Message) -> Route:
    """The most specific route for `message` (event names match in any case)."""
    routes = _routes()
    event = message.event
    candidates: list[tuple[str, ...]] = []
    if event is not None:
        candidates += [(message.msg_type, event, message.event_key), (message.msg_type, event)]
    candidates.append((message.msg_type, None))  # type: ignore[arg-type]
    for key in candidates:
        found = routes.get(_normal(key))
        if found is not None and found.applies(message):
            return found
    return DEFAULT


def _routes() -> dict[tuple[str | None, ...], Route]:
    """The table, normalised once per app: its settings do not change while it runs."""
    cached = current_app.extensions.get("berater.chat.routes")
    if cached is None:
        cached = {_normal(key): route for key, route in table().items()}
        current_app.extensions["berater.chat.routes"] = cached
    return cached


def _normal(key: tuple[str | None, ...]) -> tuple[str | None, ...]:
    # Types and events are case-insensitive names; menu keys are compared as written.
    head = tuple(part.lower() if part is not None else None for part in key[:2])
    return head + key[2:]
