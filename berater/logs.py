"""Logging: one line per request, with personal data and secrets redacted.

The formatter works on the finished line, tracebacks included, so no code path can log an
ID card number, a phone, a code or a token by accident, and CR/LF from input cannot start
a forged line.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from flask import Flask, has_request_context, request
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


def configure(app: Flask, headers: Iterable[tuple[str, str]] = ()) -> None:
    """Send berater's logs to stderr through the safe formatter, at LOG_LEVEL; wrap the app in
    `RequestLog`, which also sends `headers` with every answer."""
    logger = logging.getLogger("berater")
    if not any(isinstance(h.formatter, SafeFormatter) for h in logger.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(
            SafeFormatter("%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s")
        )
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(app.config["LOG_LEVEL"].upper())
    app.logger.handlers = logger.handlers
    app.logger.propagate = False

    access = logging.getLogger("berater.request")
    app.wsgi_app = RequestLog(app.wsgi_app, access, _masks(app), tuple(headers))  # type: ignore[method-assign]


class RequestLog:
    """WSGI middleware around the app: gives each request its id and logs one line for it.

    The id is the caller's X-Request-ID when it is a sound one, else 32 random hex digits;
    it is kept in the environ (`request_id()`) and sent back on every answer, with the fixed
    `headers` (appended here, where they cost a list append instead of a pass through
    werkzeug's header checks; also on answers given before Flask). The line says
    method, path (masked, see `mask_path`; never the query string), status, time and id, and
    is only built when the access logger is on.
    """

    def __init__(
        self,
        app: WSGIApplication,
        access: logging.Logger,
        masks: list[tuple[re.Pattern[str], str]],
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.app, self.access, self.masks, self.headers = app, access, masks, headers

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        incoming = environ.get("HTTP_X_REQUEST_ID")
        request_id = incoming if incoming and REQUEST_ID.match(incoming) else new_request_id()
        environ[REQUEST_ID_KEY] = request_id
        statuses: list[str] = []
        always = self.headers

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            headers.append(("X-Request-ID", request_id))
            headers.extend(always)
            statuses.append(status)
            return start_response(status, headers, exc_info)

        if not self.access.isEnabledFor(logging.INFO):
            return self.app(environ, start)
        started = time.perf_counter()
        body = self.app(environ, start)
        took = (time.perf_counter() - started) * 1000
        path = "/" + get_path_info(environ).lstrip("/")
        for pattern, replacement in self.masks:
            if pattern.match(path):
                path = replacement
        self.access.info(
            "%s %s %s %.1fms id=%s",
            environ.get("REQUEST_METHOD", "GET").upper(),
            path,
            statuses[-1].split(" ", 1)[0] if statuses else "-",
            took,
            request_id,
        )
        return body


def request_id() -> str:
    """The id of the request being answered ("-" outside one)."""
    return request.environ.get(REQUEST_ID_KEY, "-") if has_request_context() else "-"


def new_request_id() -> str:
    """32 random hex digits, as a uuid4's hex but without building a UUID."""
    return os.urandom(16).hex()


def mask_path(app: Flask, pattern: re.Pattern[str], replacement: str) -> None:
    """Log `replacement` instead of a request path that matches `pattern` (a path that
    carries a secret), also for answers that never reached the view."""
    _masks(app).append((pattern, replacement))


def _masks(app: Flask) -> list[tuple[re.Pattern[str], str]]:
    """The app's path masks: one list, shared by `mask_path` and the request log."""
    masks: list[tuple[re.Pattern[str], str]] = app.extensions.setdefault("berater.logs", [])
    return masks


def gunicorn_logconfig() -> dict[str, object]:
    """gunicorn's `logconfig_dict` (gunicorn.conf.py): its loggers write through SafeFormatter
    too. gunicorn.error logs a refused request line whole, query string included (an OAuth
    code, a phone, an ID card); the root logger catches third-party libraries' warnings.
    gunicorn.access is kept below its level: the app logs each request itself, without the
    query string, which gunicorn's access line would show. gunicorn.error's level stays
    gunicorn's `loglevel`."""
    handler = {"class": "logging.StreamHandler", "formatter": "safe", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"safe": {"class": f"{__name__}.SafeFormatter", "format": GUNICORN_FORMAT}},
        "handlers": {"stderr": handler},
        "root": {"level": "WARNING", "handlers": ["stderr"]},
        "loggers": {
            "gunicorn.error": {"handlers": ["stderr"], "propagate": False},
            "gunicorn.access": {"level": "WARNING", "handlers": ["stderr"], "propagate": False},
        },
    }


# The app's line format (configure), with the logger's name, so gunicorn's lines read alike.
GUNICORN_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"
