"""The WeChat template message on register and cancel: sent after the commit, in the background.

A registration never waits for, nor fails by, WeChat: each message is a background task
(berater/ext/tasks.py), tried once and then up to NOVA_NOTIFY_RETRIES more times, each retry a
new task due after a growing pause (so a worker never sleeps through it). When the queue is
full, a message or its retry is dropped and logged by the pool. Failures are logged by error
type only (never the phone, never WeChat's text, which can carry the URL with the access token).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import timedelta

from flask import current_app

from berater.apps.nova.services import Notice
from berater.extensions import tasks

log = logging.getLogger("berater.apps.nova")

KIND = "nova.notify"
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
    template_id = current_app.config.get("NOVA_TEMPLATE_ID") or ""
    if not template_id:
        return
    for notice in notices:
        tasks.submit(KIND, _attempt, template_id, notice, 1)


def _attempt(template_id: str, notice: Notice, attempt: int) -> None:
    """Try once; on a failure another try may help, queue the next after its pause."""
    from berater.ext.wechat.client import RecipientUnavailable, send_template

    retries = max(0, int(current_app.config["NOVA_NOTIFY_RETRIES"]))
    try:
        send_template(notice.openid, template_id, message_data(notice))
    except RecipientUnavailable as exc:
        # The student does not follow the account: another try cannot help.
        log.info("nova %s notice not deliverable (errcode %s)", notice.event, exc.errcode)
        return
    except Exception as exc:  # a background task has nobody to raise to
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
        # NOVA_NOTIFY_BACKOFF before the first retry, doubled before each next one.
        pause = float(current_app.config["NOVA_NOTIFY_BACKOFF"]) * 2 ** (attempt - 1)
        tasks.submit(KIND, _attempt, template_id, notice, attempt + 1, delay=pause)
        return
    log.info("nova %s notice sent (attempt %d)", notice.event, attempt)
