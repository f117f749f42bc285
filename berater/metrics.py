"""Prometheus metrics: every one the service keeps, named here, and how `/metrics` reads them.

Labels carry only small, fixed sets of values: a URL rule (`/api/code/<code>`), never a
path; a reason, an outcome or a provider's error code; never an openid, a phone, a code or
a message. A label that could take a value from outside is mapped onto a fixed set first
(an unknown HTTP method is `other`, a WeChat message type we do not route is `other`).

Under gunicorn, prometheus_client runs in multiprocess mode: gunicorn.conf.py points
PROMETHEUS_MULTIPROC_DIR at one folder for all workers (emptied when the master starts)
before this module is imported, each worker writes its values to its own files there, and
`/metrics`, whichever worker answers, adds up the files of all of them. A worker that exits
is marked dead (its gauges stop counting; its counters stay in the totals). Without the
variable (`flask`, `python run.py`, the tests) the values live in this process.

Cost: what a request counts (its histogram observation, its token check) is appended to a
queue, and the process's writer thread writes it within FLUSH_SECONDS (`flush`). Under
gunicorn each observation is written as two doubles packed straight into the worker's
memory-mapped file (`FileSeries`), not through prometheus_client's `observe`, which asks
the system for the process id and goes through four calls a write; the token checks of a
pass are added up and written once for each result.
"""

from __future__ import annotations

import atexit
import collections
import logging
import math
import os
import struct
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

# prometheus_client picks its mode when first imported: multiprocess whenever
# PROMETHEUS_MULTIPROC_DIR is in the environment, even empty, and an empty one puts the
# files in the working folder. Empty means unset, as for every setting (`.env.example`
# ships `PROMETHEUS_MULTIPROC_DIR=`, and `flask` loads `.env` before the app's modules).
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR", "").strip():
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from berater.http import ROUTE_KEY

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

log = logging.getLogger("berater.metrics")

LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"  # no URL rule matched (404, or refused before routing)

HTTP_REQUESTS = Histogram(
    "berater_http_request_duration_seconds",
    "Requests by URL rule, method and status, and the time to answer them",
    ["endpoint", "method", "status"],
    buckets=LATENCY,
)
TOKENS_MINTED = Counter(
    "berater_tokens_minted_total", "Tokens minted, by kind of subject", ["kind"]
)
TOKEN_CHECKS = Counter(
    "berater_token_checks_total",
    "Token checks on protected endpoints: ok, or the reason of the refusal",
    ["result"],
)
TOKEN_CHECKS.labels("ok")  # made now: every worker's scrape lists it before the first check
SMS_SENDS = Counter(
    "berater_sms_sends_total",
    "SMS codes handed to the backend, by backend and outcome "
    "(sent, refused by the provider, unknown after a timeout, failed)",
    ["backend", "outcome"],
)
SMS_PROVIDER_ERRORS = Counter(
    "berater_sms_provider_errors_total", "SMS provider refusals by its error code", ["code"]
)
WEBHOOK_MESSAGES = Counter(
    "berater_webhook_messages_total", "Webhook messages handled, by type", ["type"]
)
WEBHOOK_DUPLICATES = Counter(
    "berater_webhook_duplicates_total", "Webhook messages WeChat delivered again (answered once)"
)
WEBHOOK_REPLAYS = Counter(
    "berater_webhook_replays_refused_total",
    "Webhook messages refused: another message under a signature already used",
)
UPSTREAM_SECONDS = Histogram(
    "berater_upstream_request_duration_seconds",
    "Calls to WeChat, Aliyun SMS and BERT, by operation and outcome, and their time",
    ["service", "operation", "outcome"],
    buckets=LATENCY,
)
UPSTREAM_ERRORS = Counter(
    "berater_upstream_errors_total",
    "Failed calls to WeChat, Aliyun SMS and BERT, by kind of error",
    ["service", "operation", "error"],
)
WECHAT_REFRESHES = Counter(
    "berater_wechat_refreshes_total",
    "Fetches of the values WeChat hands out for a while (access_token, jsapi_ticket), by outcome",
    ["value", "outcome"],
)
TASKS_WAITING = Gauge(
    "berater_tasks_waiting",
    "Background tasks waiting in the queue, over all workers",
    multiprocess_mode="livesum",
)
TASKS_DROPPED = Counter(
    "berater_tasks_dropped_total", "Background tasks refused, by reason", ["reason"]
)

BOUNDS = (*LATENCY, math.inf)  # the request histogram's buckets, +Inf last, as it keeps them
# Writes a value and its timestamp at an offset of a mapping, as MmapedDict keeps them.
WRITE_TWO_DOUBLES = struct.Struct("dd").pack_into


class FileSeries:
    """One label set of the request histogram under gunicorn, written straight into the
    worker's file: the bucket's count and the sum, each one write of two doubles (the value
    and a zero timestamp) at the place prometheus_client gave them when it made the series,
    so `/metrics` reads them as it reads its own. This knows the layout of
    prometheus_client's MmapedDict (the version is pinned; tests/ops/test_metrics.py
    compares every bucket, count and sum with prometheus_client's own `observe`); where it
    does not find it, `_series_for` falls back to `observe`. Made in the process that
    observes: prometheus_client moves a forked child's series to its own file on the first
    `get()`, and the series made before a fork are forgotten in the child. The series must
    be written only through it in this process (the totals are kept here), and only by
    `flush`, which writes one pass at a time. It writes once for every request, so it
    touches few objects: the values in one list, their places as plain offsets, each write
    packed straight into the mapping."""

    __slots__ = ("file", "offsets", "values")

    def __init__(self, child: Any) -> None:
        parts = [*child._buckets, child._sum]
        self.values = [part.get() for part in parts]  # get() follows a fork first
        self.file = child._sum._file
        self.offsets = tuple(self.file._positions[part._key] for part in parts)
        if self.file._m is None:  # a closed file: refused here, not at the first request
            raise TypeError("the series' file is closed")

    def observe(self, seconds: float) -> None:
        bucket = bisect_left(BOUNDS, seconds)  # the first bound >= seconds, as prometheus'
        values, offsets = self.values, self.offsets
        count = values[bucket] = values[bucket] + 1.0
        total = values[-1] = values[-1] + seconds
        mapped = self.file._m  # asked each time: a growing file gets a new mapping
        WRITE_TWO_DOUBLES(mapped, offsets[bucket], count, 0.0)
        WRITE_TWO_DOUBLES(mapped, offsets[-1], total, 0.0)


def _series_for(key: tuple[str, str, str]) -> Callable[[float], None]:
    rule, method, status = key
    child = HTTP_REQUESTS.labels(rule, method, status.partition(" ")[0] or "-")
    if not getattr(child._sum, "_multiprocess", False):  # values in this process
        return child.observe
    try:
        return FileSeries(child).observe
    except (AttributeError, KeyError, TypeError):  # not the layout FileSeries knows
        return child.observe


# The series of each (rule, method, status line) seen: the status line as the server was
# given it ("200 OK"); the code is cut out of it once, when its series is made.
_requests: dict[tuple[str, str, str], Callable[[float], None]] = {}

# What every request counts waits in these queues until the writer thread writes it, every
# FLUSH_SECONDS, in one warm pass: a request only appends. Written as each request was
# answered, the counts cost the process more than the rest of its metrics: by the next
# request the code, the series and the file's page are out of the caches again.
# Answered requests are (route, method, status line, seconds); token checks, their result.
# WAITING_LIMIT is far more than a worker answers between two passes: without a writer (no
# thread could start) the oldest are dropped instead of the queues growing for ever.
WAITING_LIMIT = 100_000
_answered: collections.deque[tuple[Any, str, str, float]] = collections.deque(maxlen=WAITING_LIMIT)
_checked: collections.deque[str] = collections.deque(maxlen=WAITING_LIMIT)
FLUSH_SECONDS = 0.5
WRITER_NAME = "berater-metrics"
_flushing = threading.Lock()  # one writer of the waiting counts at a time
_writer: threading.Thread | None = None


def observe_request(environ: WSGIEnvironment, status: str, seconds: float) -> None:
    """Count one answered request under its URL rule (RequestLog calls this with the
    answer's status line, "-" when there was none)."""
    _answered.append(
        (environ.get(ROUTE_KEY), environ.get("REQUEST_METHOD", "GET"), status, seconds)
    )
    if _writer is None:
        _start_writer()


def token_check(result: str) -> None:
    """Count one token check: "ok", or the reason it was refused (a few fixed words)."""
    _checked.append(result)
    if _writer is None:
        _start_writer()


def flush() -> None:
    """Write the counts that wait into their series. They are written within FLUSH_SECONDS
    anyway; `render` calls this first, and so does the process at exit."""
    with _flushing:
        answered, checked = _answered.popleft, _checked.popleft
        while _answered:  # appends go on meanwhile; only this takes from the left
            route, method, status, seconds = answered()
            key = (
                route.rule if route is not None else UNMATCHED,
                method if method in METHODS else "other",
                status,
            )
            observe = _requests.get(key)
            if observe is None:
                observe = _requests[key] = _series_for(key)
            observe(seconds)
        results: collections.Counter[str] = collections.Counter()  # prometheus' Counter is another
        while _checked:
            results[checked()] += 1
        for result, count in results.items():  # one write a result, whatever the count
            TOKEN_CHECKS.labels(result).inc(count)


def _start_writer() -> None:
    """Start this process's writer at its first count: threads do not survive a fork, and
    gunicorn's master counts nothing. What waits at the process's exit is written then."""
    global _writer
    with _flushing:
        if _writer is not None:
            return
        _writer = threading.Thread(target=_write_every, name=WRITER_NAME, daemon=True)
        try:
            _writer.start()
        except RuntimeError as exc:  # no thread to be had: counts wait for a scrape or the exit
            log.warning("metrics writer not started: %s", exc)


def _write_every() -> None:
    while True:
        time.sleep(FLUSH_SECONDS)
        try:
            flush()
        except Exception as exc:  # the writer goes on; the next pass writes what is left
            log.warning("metrics not written: %s", type(exc).__name__)


def _after_fork_in_child() -> None:
    """A forked child counts into series of its own (prometheus_client moves them to its
    file); the parent's waiting counts stay the parent's, and its writer did not come."""
    global _writer, _flushing
    _requests.clear()
    _answered.clear()
    _checked.clear()
    _writer = None
    _flushing = threading.Lock()  # the parent's writer may have held it at the fork


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(flush)  # a process that counted nothing has nothing to write


# WeChat's message types and events; anything else is counted as "other".
MESSAGE_TYPES = frozenset(
    {"text", "image", "voice", "video", "shortvideo", "location", "link", "file", "event"}
)
EVENTS = frozenset(
    {"subscribe", "unsubscribe", "scan", "location", "click", "view", "templatesendjobfinish"}
)


def webhook_message(msg_type: str, event: str | None) -> None:
    """Count a webhook message by type (`event:<name>` for events)."""
    kind = msg_type.lower() if msg_type.lower() in MESSAGE_TYPES else "other"
    if kind == "event":
        name = (event or "").lower()
        kind = f"event:{name if name in EVENTS else 'other'}"
    WEBHOOK_MESSAGES.labels(kind).inc()


@contextmanager
def upstream(service: str, operation: str) -> Iterator[dict[str, str]]:
    """Time a call to `service`; the block sets `error` in the dict it gets to the kind of
    failure when the call failed without raising, and an exception counts as its type."""
    outcome: dict[str, str] = {}
    started = time.perf_counter()
    try:
        yield outcome
    except Exception as exc:
        outcome.setdefault("error", type(exc).__name__)
        raise
    finally:
        took = time.perf_counter() - started
        error = outcome.get("error")
        UPSTREAM_SECONDS.labels(service, operation, "error" if error else "ok").observe(took)
        if error:
            UPSTREAM_ERRORS.labels(service, operation, error).inc()


def render(directory: str) -> tuple[bytes, str]:
    """The exposition text of every metric and its media type: added up over the files of
    every worker in `directory` (PROMETHEUS_MULTIPROC_DIR), or this process's own."""
    flush()
    if directory:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=directory)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
