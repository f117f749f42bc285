"""The limit on outbound calls a person waits for: WeChat's sign-in code exchange and Aliyun's
SMS send. Each worker process lets UPSTREAM_MAX_CONCURRENT of them run at once; one more is
refused at once with 503 and `Retry-After` instead of waiting for a slot, so a slow WeChat or
Aliyun can hold at most that many of the process's threads and the rest stay free for the
webhook and token checks, which never take a slot. Per instance: workers x this limit.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

from flask import Flask, current_app

from berater.errors import ServiceUnavailable
from berater.ext import Extension

log = logging.getLogger("berater.upstream")

RETRY_AFTER = 1  # seconds: a slot frees within one upstream timeout, usually far sooner


class UpstreamBusy(ServiceUnavailable):
    message = "too many people are signing in right now, try again in a moment"

    def __init__(self) -> None:
        super().__init__(None, {"retry_after": RETRY_AFTER}, {"Retry-After": str(RETRY_AFTER)})


class Slots:
    """A non-blocking counting semaphore of this process's outbound calls."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._semaphore = threading.BoundedSemaphore(limit)

    @contextmanager
    def take(self, what: str) -> Iterator[None]:
        """Hold a slot for the block; raise UpstreamBusy at once when none is free."""
        if not self._semaphore.acquire(blocking=False):
            log.warning("%s refused: %d outbound calls already waiting", what, self.limit)
            raise UpstreamBusy()
        try:
            yield
        finally:
            self._semaphore.release()


class Upstream(Extension[Slots]):
    """Flask extension: the per-process slots of outbound calls (UPSTREAM_MAX_CONCURRENT)."""

    extension_key = "berater.upstream"
    label = "the upstream limit"

    def create(self, app: Flask) -> Slots:
        return Slots(app.config["UPSTREAM_MAX_CONCURRENT"])


def upstream_slot(what: str) -> AbstractContextManager[None]:
    """`with upstream_slot("wechat oauth"): ...` around one outbound call of the current app."""
    slots: Slots = current_app.extensions[Upstream.extension_key]
    return slots.take(what)
