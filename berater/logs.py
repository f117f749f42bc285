"""Logging: one line per request, with personal data and secrets redacted.

The formatter works on the finished line, tracebacks included, so no code path can log an
ID card number, a phone, a code or a token by accident, and CR/LF from input cannot start
a forged line.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from flask import Flask, Response, g, request

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


def configure(app: Flask) -> None:
    """Send berater's logs to stderr through the safe formatter, at LOG_LEVEL."""
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
    masks: list[tuple[re.Pattern[str], str]] = app.extensions.setdefault("berater.logs", [])

    @app.before_request
    def start_request() -> None:
        g.started = time.perf_counter()
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if REQUEST_ID.match(incoming) else uuid.uuid4().hex

    @app.after_request
    def log_request(response: Response) -> Response:
        request_id = g.get("request_id") or uuid.uuid4().hex
        response.headers["X-Request-ID"] = request_id
        if access.isEnabledFor(logging.INFO):
            took = (time.perf_counter() - g.get("started", time.perf_counter())) * 1000
            path = request.path
            for pattern, replacement in masks:
                if pattern.match(path):
                    path = replacement
            # The path only: query strings may hold codes and are not logged.
            access.info(
                "%s %s %s %.1fms id=%s",
                request.method,
                path,
                response.status_code,
                took,
                request_id,
            )
        return response


def mask_path(app: Flask, pattern: re.Pattern[str], replacement: str) -> None:
    """Log `replacement` instead of a request path that matches `pattern` (a path that
    carries a secret), also for answers that never reached the view."""
    app.extensions.setdefault("berater.logs", []).append((pattern, replacement))


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
