"""No secret or personal data reaches a log line, and input cannot forge one."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import runpy
from datetime import timedelta
from pathlib import Path

import pytest
from gunicorn import glogging
from gunicorn.config import Config

from berater import logs
from berater.logs import SafeFormatter, redact
from tests import factories

CARD = factories.id_card(1)


@pytest.mark.parametrize(
    ("text", "hidden"),
    [
        (f"id_card {CARD}", CARD),
        (f"card {CARD[:-1]}x", CARD[:-1] + "x"),
        ("phone 13812345678", "13812345678"),
        ("phone +86 138-1234-5678", "138-1234-5678"),
        ("code 123456 sent", "123456"),
        ("Authorization: Bearer gAAAAABsomethingverylongtoken123456", "gAAAAABsomething"),
        ("Bearer face s3cr3t-app-token", "s3cr3t-app-token"),
        ("password=hunter2&x=1", "hunter2"),
        ('{"password": "hunter2"}', "hunter2"),
        ('{"code": "0a1B2c"}', "0a1B2c"),
    ],
)
def test_secrets_and_personal_data_are_redacted(text, hidden):
    assert hidden not in redact(text)


def test_ordinary_text_is_kept():
    line = "GET /api/token 200 3.2ms id=abc"
    assert redact(line) == line


def _format(message: str, *args: object, exc: BaseException | None = None) -> str:
    record = logging.LogRecord("berater.x", logging.INFO, __file__, 1, message, args, None)
    if exc is not None:
        record.exc_info = (type(exc), exc, exc.__traceback__)
    return SafeFormatter("%(message)s").format(record)


def test_cr_lf_in_input_cannot_start_a_new_log_line():
    line = _format("GET %s", "/x\r\n2026-01-01 INFO berater.request forged")
    assert "\n" not in line
    assert "\r" not in line
    assert "\\x0d\\x0a" in line


def test_a_traceback_is_redacted_and_marked_as_continuation():
    try:
        raise ValueError(f"bad card {CARD}")
    except ValueError as exc:
        text = _format("failed", exc=exc)
    assert CARD not in text
    assert all(line.startswith(" | ") for line in text.split("\n")[1:])


def test_request_logs_never_show_codes_tokens_or_cards(client):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(SafeFormatter("%(message)s"))
    logger = logging.getLogger("berater")
    logger.addHandler(handler)
    try:
        token = client.post("/api/test/token/o_logged").get_json()["data"]["token"]
        client.get("/api/token", headers={"Authorization": f"Bearer {token}"})
        client.get(f"/api/code/123456?phone=13812345678&id_card={CARD}")
        client.post("/api/token", json={"username": "x", "password": "hunter2-secret"})
    finally:
        logger.removeHandler(handler)
    output = stream.getvalue()
    assert "GET /api/token 200" in output
    for secret in (token, "123456", "13812345678", CARD, "hunter2-secret"):
        assert secret not in output


def test_log_format_json_writes_one_redacted_object_per_line(make_app):
    app = make_app(LOG_FORMAT="json")
    (ours,) = [h for h in logging.getLogger("berater").handlers if h.name == logs.HANDLER_NAME]
    assert isinstance(ours.formatter, logs.JsonFormatter)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    logger = logging.getLogger("berater")
    logger.addHandler(handler)
    client = app.test_client()
    try:
        token = client.post("/api/test/token/o_json").get_json()["data"]["token"]
        client.get("/api/token", headers={"Authorization": f"Bearer {token}"})
        client.get(f"/api/code/123456?phone=13812345678&id_card={CARD}")
        client.post("/api/token", json={"username": "x", "password": "hunter2-secret"})
        with app.test_request_context(environ_base={logs.REQUEST_ID_KEY: "req-in-context-1"}):
            try:
                raise ValueError(f"bad card {CARD}\nsecond line")
            except ValueError:
                logging.getLogger("berater.x").exception("failed for %s", "13812345678")
    finally:
        logger.removeHandler(handler)
    output = stream.getvalue()
    for secret in (token, "123456", "13812345678", CARD, "hunter2-secret"):
        assert secret not in output
    lines = [json.loads(line) for line in output.splitlines()]
    requests = [line for line in lines if line["logger"] == "berater.request"]
    assert [(r["method"], r["path"], r["status"]) for r in requests] == [
        ("POST", "/api/test/token/o_json", 200),
        ("GET", "/api/token", 200),
        ("GET", "/api/code/******", 401),
        ("POST", "/api/token", 401),
    ]
    for record in requests:
        assert set(record) == {
            "time", "level", "logger", "message", "pid",
            "request_id", "method", "path", "status", "duration_ms",
        }  # fmt: skip
        assert record["level"] == "INFO" and record["pid"] == os.getpid()
        assert re.fullmatch(r"[0-9a-f]{32}", record["request_id"])
        assert isinstance(record["duration_ms"], float)
        assert record["time"].endswith("+00:00")
    (failure,) = [line for line in lines if line["logger"] == "berater.x"]
    assert failure["level"] == "ERROR"
    assert failure["message"] == "failed for [phone]"
    assert failure["request_id"] == "req-in-context-1"
    assert "ValueError: bad card [id_card]" in failure["exc"]


def test_a_text_app_after_a_json_app_logs_text_again(make_app):
    make_app(LOG_FORMAT="json")
    make_app()
    ours = [h for h in logging.getLogger("berater").handlers if h.name == logs.HANDLER_NAME]
    assert len(ours) == 1
    assert type(ours[0].formatter) is SafeFormatter


def test_forked_workers_make_different_request_ids():
    """Request ids come from `random`, which each forked worker seeds anew: two workers
    forked from one master never hand out the same sequence."""
    ids = []
    for _ in range(2):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the worker: its first ids, then gone
            os.close(read)
            os.write(write, "".join(logs.new_request_id() for _ in range(4)).encode())
            os._exit(0)
        os.close(write)
        with os.fdopen(read, "rb") as answer:
            ids.append(answer.read().decode())
        os.waitpid(pid, 0)
    assert all(re.fullmatch(r"[0-9a-f]{128}", sequence) for sequence in ids)
    assert ids[0] != ids[1]
    assert logs.new_request_id() not in ids[0] + ids[1]


def test_gunicorn_builds_no_access_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """The app logs each request; gunicorn.conf.py's logger class never builds gunicorn's
    access line, whose fields (headers, the whole environ) gunicorn would otherwise put
    together for every request only to drop them."""
    # gunicorn.conf.py sets PROMETHEUS_MULTIPROC_DIR; not for the tests after this one.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", os.environ.get("PROMETHEUS_MULTIPROC_DIR", ""))
    conf = runpy.run_path(str(Path(__file__).resolve().parent.parent / "gunicorn.conf.py"))
    assert conf["logger_class"] == "berater.logs.GunicornLogger"
    config = Config()
    config.set("accesslog", "-")  # an access log gunicorn would write
    built: list[str] = []

    def spy(base: type[glogging.Logger]) -> glogging.Logger:
        class Spied(base):
            def atoms(self, *args: object) -> dict[str, str]:
                built.append(base.__name__)
                return {}

        return Spied(config)

    for logger in (spy(logs.GunicornLogger), spy(glogging.Logger)):
        logger.access(None, None, {}, timedelta(0))
    assert built == ["Logger"]  # gunicorn's own, not ours


def test_request_ids_never_look_like_a_phone_or_an_id_card():
    """A made-up id holds at most seven digits in a row, so the log's masking of phones
    (11 digits) and ID cards (18) leaves it readable in every line."""
    for _ in range(20_000):
        request_id = logs.new_request_id()
        assert re.fullmatch(r"[0-9a-f]{32}", request_id)
        assert not re.search(r"[0-9]{8}", request_id)
        assert logs.redact(request_id) == request_id
