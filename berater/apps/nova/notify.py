"""The WeChat template message on register and cancel: sent after the commit, in the background.

A registration never waits for, nor fails by, WeChat: the message goes to a small bounded
thread pool, which tries it once and then up to NOVA_NOTIFY_RETRIES more times with a growing
pause. Failures are logged by error type only (never the phone, never WeChat's text, which can
carry the URL with the access token).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from flask import Flask, current_app

from berater.apps.nova.services import Notice

log = logging.getLogger("berater.apps.nova")

# Bounded: a burst of registrations while WeChat is down cannot start unbounded threads,
# nor queue unbounded work (MAX_PENDING notices at most; later ones are dropped and logged).
_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="nova-notify")
MAX_PENDING = 500
_pending = 0
_lock = threading.Lock()

TITLES = {"registered": "你已成功报名 Nova 社团", "cancelled": "你的 Nova 社团报名已取消"}
CHINA_OFFSET = timedelta(hours=8)  # the time in a message is Beijing time, as the student reads it


def message_data(notice: Notice) -> dict[str, str]:
    """The template's fields: no phone, QQ or self-introduction, only what names the event."""
    at = (notice.at + CHINA_OFFSET).strftime("%Y-%m-%d %H:%M")  # `at` is naive UTC
    return {
        "first": TITLES[notice.event],
        "keyword1": notice.name,
        "keyword2": notice.stuid,
        "keyword3": at,
        "remark": "如有疑问，请联系社团管理员。",
    }


def send_later(notices: Iterable[Notice]) -> None:
    """Queue a template message per notice; a no-op when NOVA_TEMPLATE_ID is empty."""
    global _pending
    template_id = current_app.config.get("NOVA_TEMPLATE_ID") or ""
    if not template_id:
        return
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    for notice in notices:
        with _lock:
            if _pending >= MAX_PENDING:
                log.warning("nova notice dropped: %d already waiting", _pending)
                continue
            _pending += 1
        _pool.submit(_send, app, template_id, notice)


def pending() -> int:
    """Notices queued or being sent now (for health checks and tests)."""
    with _lock:
        return _pending


def _send(app: Flask, template_id: str, notice: Notice) -> None:
    global _pending
    try:
        with app.app_context():
            _send_with_retries(template_id, notice)
    finally:
        with _lock:
            _pending -= 1


def _send_with_retries(template_id: str, notice: Notice) -> None:
    from berater.ext.wechat.client import RecipientUnavailable, send_template

    retries = max(0, int(current_app.config["NOVA_NOTIFY_RETRIES"]))
    delay = float(current_app.config["NOVA_NOTIFY_BACKOFF"])
    data = message_data(notice)
    for attempt in range(1, retries + 2):
        try:
            send_template(notice.openid, template_id, data)
            log.info("nova %s notice sent (attempt %d)", notice.event, attempt)
            return
        except RecipientUnavailable as exc:
            # The student does not follow the account: another try cannot help.
            log.info("nova %s notice not deliverable (errcode %s)", notice.event, exc.errcode)
            return
        except Exception as exc:  # a background thread has nobody to raise to
            if attempt > retries:
                log.warning(
                    "nova %s notice not sent after %d attempts: %s",
                    notice.event,
                    attempt,
                    type(exc).__name__,
                )
                return
            log.info(
                "nova %s notice failed (%s), retry %d of %d",
                notice.event,
                type(exc).__name__,
                attempt,
                retries,
            )
            time.sleep(delay)
            delay *= 2
