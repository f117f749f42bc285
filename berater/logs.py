"""Logging: one line per request, with personal data and secrets redacted.

The formatter works on the finished line, tracebacks included, so no code path can log an
ID card number, a phone, a code or a token by accident, and CR/LF from input cannot start
a forged line.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from random import getrandbits
from typing import TYPE_CHECKING, Any

import orjson
from flask import Flask, has_request_context, request
from gunicorn import glogging
from werkzeug.wsgi import get_path_info

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

REDACTIONS = [
    # Fernet tokens, then Bearer credentials of any shape.
    (re.compile(r"gAAAAA[A-Za-z0-9_\-=]{20,}"), "[token]"),
    (re.compile(r"(?i)(bearer\s+)\S+(\s+\S+)?"), r"\1[redacted]"),
    # ID card numbers (17 digits and a check character) and other long digit runs.
    (re.compile(r"(?<![0-9])[0-9]{17}[0-9Xx](?![0-9])"), "[id_card]"),
    (re.compile(r"(?<![0-9])(?:\+?86[ -]?)?1[3-9][0-9](?:[ -]?[0-9]{4}){2}(?![0-9])"), "[phone]"),
    (re.compile(r"(?<![0-9A-Za-z])[0-9]{6,}(?![0-9A-Za-z])"), "[digits]"),
    (
        re.compile(r"(?i)\b(password|passwd|secret|token|code|id_card|phone|key)=[^&\s]*"),
        r"\1=[redacted]",
    ),
    (
        re.compile(r'(?i)"(password|secret|token|code|id_card|phone|key)"\s*:\s*"[^"]*"'),
        r'"\1": "[redacted]"',
    ),
]
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
REQUEST_ID_KEY = "berater.request_id"  # where RequestLog keeps the id in the WSGI environ
# Probes and the metrics scraper ask these every few seconds: their request lines are logged
# at DEBUG, not INFO (a failed readiness check logs its own warning naming the part).
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
HANDLER_NAME = "berater.stderr"  # the handler `configure` gives the "berater" logger
# Told of each answer: the WSGI environ, its status line ("200 OK", "-" for none) and the
# seconds it took.
Observer = Callable[["WSGIEnvironment", str, float], None]
# Given each answer's WSGI environ and its headers, before they are sent: adds to them.
AnswerHook = Callable[["WSGIEnvironment", list[tuple[str, str]]], None]


def redact(text: str) -> str:
    """Text safe to log: secrets and personal data replaced by placeholders."""
    for pattern, replacement in REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


class SafeFormatter(logging.Formatter):
    """Redacts every finished record and keeps it on one line per logical record."""

    def format(self, record: logging.LogRecord) -> str:
        saved = record.msg, record.args, record.exc_text
        # The message stays on one line, whatever its arguments hold; it and any traceback
        # are redacted, the prefix (time, level, pid) is ours and left alone.
        record.msg, record.args = redact(CONTROL.sub(_escape, record.getMessage())), None
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        try:
            text = super().format(record)
        finally:
            record.msg, record.args, record.exc_text = saved
        # Traceback lines follow, each marked as a continuation of this record.
        first, *rest = text.split("\n")
        return "\n".join([first, *(" | " + CONTROL.sub(_escape, line) for line in rest)])


def _escape(match: re.Match[str]) -> str:
    return f"\\x{ord(match.group()):02x}"


class JsonFormatter(logging.Formatter):
    """LOG_FORMAT=json: one JSON object per line, redacted as SafeFormatter redacts.

    Keys: time (UTC, ISO 8601), level, logger, message, pid; during a request its
    request_id; on the request line also method, path (masked, without the query string),
    status and duration_ms; and exc, the traceback, when there is one. Every text value goes
    through the same redaction as a text line; JSON escapes what is left of line breaks.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": _clean(record.getMessage()),
            "pid": record.process,
        }
        fields = getattr(record, "http", None)
        if fields:
            entry.update({k: _clean(v) if isinstance(v, str) else v for k, v in fields.items()})
        elif has_request_context():
            entry["request_id"] = request_id()
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = redact(record.exc_text)
        if record.stack_info:
            entry["stack"] = redact(record.stack_info)
        return orjson.dumps(entry).decode()


def _clean(text: str) -> str:
    return redact(CONTROL.sub(_escape, text))


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"
FORMATTERS: dict[str, Callable[[], logging.Formatter]] = {
    "text": lambda: SafeFormatter(TEXT_FORMAT),
    "json": JsonFormatter,
}


def configure(
    app: Flask,
    headers: Iterable[tuple[str, str]] = (),
    observe: Observer | None = None,
    answer: AnswerHook | None = None,
) -> None:
    """Send berater's logs to stderr through the redacting formatter of LOG_FORMAT (text or
    JSON), at LOG_LEVEL; wrap the app in the request log, which sends `headers` with every
    answer, lets `answer` add the headers that depend on the request, and tells `observe`
    of each answer."""
    logger = logging.getLogger("berater")
    handler = next((h for h in logger.handlers if h.name == HANDLER_NAME), None)
    if handler is None:
        handler = logging.StreamHandler()
        handler.name = HANDLER_NAME
        logger.addHandler(handler)
        logger.propagate = False
    handler.setFormatter(FORMATTERS[app.config["LOG_FORMAT"]]())
    logger.setLevel(app.config["LOG_LEVEL"].upper())
    app.logger.handlers = logger.handlers
    app.logger.propagate = False

    app.wsgi_app = RequestLog(  # type: ignore[method-assign]
        app.wsgi_app,
        logging.getLogger("berater.request"),
        _masks(app),
        tuple(headers),
        observe,
        answer,
    )


class RequestLog:
    """WSGI middleware around the app: gives each request its id and logs one line for it.

    The id is the caller's X-Request-ID when it is a sound one, else 32 random hex digits;
    it is kept in the environ (`request_id()`) and sent back on every answer, with the fixed
    `headers` and those `answer(environ, headers)` adds (appended here, where they cost a
    list append instead of a pass through werkzeug's header checks; also on answers given
    before Flask). The line says method,
    path (masked, see `mask_path`; never the query string), status, time and id, and is only
    built when the access logger is on. The same fields go with the record (its `http`
    attribute) for the JSON format. The health probes' lines (QUIET_PATHS) are DEBUG.
    `observe(environ, status_line, seconds)`, when given, is told of every answer (the
    metrics).
    """

    def __init__(
        self,
        app: WSGIApplication,
        access: logging.Logger,
        masks: list[tuple[re.Pattern[str], str]],
        headers: tuple[tuple[str, str], ...] = (),
        observe: Observer | None = None,
        answer: AnswerHook | None = None,
    ) -> None:
        self.app, self.access, self.masks = app, access, masks
        self.headers, self.observe, self.answer = headers, observe, answer

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        incoming = environ.get("HTTP_X_REQUEST_ID")
        request_id = incoming if incoming and REQUEST_ID.match(incoming) else new_request_id()
        environ[REQUEST_ID_KEY] = request_id
        statuses: list[str] = []
        always, answer = self.headers, self.answer

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if answer is not None:
                answer(environ, headers)
            headers.append(("X-Request-ID", request_id))
            headers.extend(always)
            statuses.append(status)
            return start_response(status, headers, exc_info)

        logging_on = self.access.isEnabledFor(logging.INFO)
        observe = self.observe
        if not logging_on and observe is None:
            return self.app(environ, start)
        started = time.perf_counter()
        body = self.app(environ, start)
        seconds = time.perf_counter() - started
        status_line = statuses[-1] if statuses else "-"
        if observe is not None:
            observe(environ, status_line, seconds)
        if not logging_on:
            return body
        status = status_line.partition(" ")[0]
        took = seconds * 1000
        path = "/" + get_path_info(environ).lstrip("/")
        level = logging.DEBUG if path in QUIET_PATHS else logging.INFO
        if level == logging.DEBUG and not self.access.isEnabledFor(level):
            return body
        for pattern, replacement in self.masks:
            if pattern.match(path):
                path = replacement
        method = environ.get("REQUEST_METHOD", "GET").upper()
        fields = {
            "request_id": request_id,
            "method": method,
            "path": path,
            "status": int(status) if status.isdigit() else None,
            "duration_ms": round(took, 1),
        }
        self.access.log(
            level,
            "%s %s %s %.1fms id=%s",
            method,
            path,
            status,
            took,
            request_id,
            extra={"http": fields},
        )
        return body


def request_id() -> str:
    """The id of the request being answered ("-" outside one)."""
    return request.environ.get(REQUEST_ID_KEY, "-") if has_request_context() else "-"


# The first hex digit of every group of eight is one of c-f, so an id never holds more than
# seven digits in a row and the log's masking never takes it for a phone or an ID card.
REQUEST_ID_LETTERS = int("c0000000" * 4, 16)


def new_request_id() -> str:
    """32 random hex digits. A request id only tells one request's lines from another's and
    is no secret (a caller may choose its own), so it comes from `random`, without the
    system call `os.urandom` makes; `random` is seeded anew in each forked worker."""
    return (getrandbits(128) | REQUEST_ID_LETTERS).to_bytes(16, "big").hex()


def mask_path(app: Flask, pattern: re.Pattern[str], replacement: str) -> None:
    """Log `replacement` instead of a request path that matches `pattern` (a path that
    carries a secret), also for answers that never reached the view."""
    _masks(app).append((pattern, replacement))


def _masks(app: Flask) -> list[tuple[re.Pattern[str], str]]:
    """The app's path masks: one list, shared by `mask_path` and the request log."""
    masks: list[tuple[re.Pattern[str], str]] = app.extensions.setdefault("berater.logs", [])
    return masks


class GunicornLogger(glogging.Logger):
    """gunicorn's logger (gunicorn.conf.py's `logger_class`) without its access line.

    The app logs each request itself, redacted and without the query string. gunicorn's
    line stays off (gunicorn.access is kept below its level, `gunicorn_logconfig`), but
    with a `logconfig_dict` gunicorn still built its fields for every request, the headers
    and the whole environ among them, only to drop them: tens of microseconds a request.
    """

    def access(self, resp: Any, req: Any, environ: Any, request_time: Any) -> None:
        return None


def gunicorn_logconfig(log_format: str = "text") -> dict[str, object]:
    """gunicorn's `logconfig_dict` (gunicorn.conf.py): its loggers write through the app's
    redacting formatter of `log_format` (LOG_FORMAT) too. gunicorn.error logs a refused
    request line whole, query string included (an OAuth code, a phone, an ID card); the
    root logger catches third-party libraries' warnings.
    gunicorn.access is kept below its level: the app logs each request itself, without the
    query string, which gunicorn's access line would show. gunicorn.error's level stays
    gunicorn's `loglevel`."""
    handler = {"class": "logging.StreamHandler", "formatter": "safe", "stream": "ext://sys.stderr"}
    formatter: dict[str, str] = (
        {"()": f"{__name__}.JsonFormatter"}
        if log_format == "json"
        else {"class": f"{__name__}.SafeFormatter", "format": TEXT_FORMAT}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"safe": formatter},
        "handlers": {"stderr": handler},
        "root": {"level": "WARNING", "handlers": ["stderr"]},
        "loggers": {
            "gunicorn.error": {"handlers": ["stderr"], "propagate": False},
            "gunicorn.access": {"level": "WARNING", "handlers": ["stderr"], "propagate": False},
        },
    }
