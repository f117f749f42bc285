"""The links the chat sends to these pages: WECHAT_BIND_URL and WECHAT_ANSWER_URL when they
are set, else the pages on SERVICE_BASE_URL."""

from __future__ import annotations

from typing import Any

from flask import current_app

from berater.errors import ServiceUnavailable
from berater.urls import external_url


def _setting_or_page(name: str, endpoint: str, **values: Any) -> str:
    configured = str(current_app.config.get(name) or "")
    if configured:
        return configured
    try:
        return external_url(endpoint, **values)
    except ServiceUnavailable:  # no SERVICE_BASE_URL (development or tests emptied it)
        return ""


def bind_url() -> str:
    """Where a person who is not bound yet binds: the landing by type for a student, which
    signs in and shows the registration page, then my binding."""
    return _setting_or_page("WECHAT_BIND_URL", "signin.index", type="student")


def answer_url() -> str:
    """The Q&A page, where the full answer of a reply cut to WeChat's limit can be read."""
    return _setting_or_page("WECHAT_ANSWER_URL", "pages.qna")
