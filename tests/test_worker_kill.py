"""A gunicorn worker killed mid-request: only its own request is lost, and retrying it is safe.

The real gunicorn with the project's gunicorn.conf.py and two workers taking one connection
each (servers.ONE_CONNECTION_PER_WORKER), on this run's
database and store (SQLite and the embedded store, or MariaDB and Redis with `-m backends`),
the stand-in Aliyun SMS over HTTP. A request is caught in the middle of its work (waiting for
a slow SMS provider, or for a row lock the test holds in the database), the worker holding its
connection (read from the kernel) gets SIGKILL, and then:

- the client of that request gets a dropped connection, at once;
- a request in flight on the other worker is answered as if nothing happened;
- the master replaces the worker, and requests afterwards succeed on both;
- the retry does not do the work twice: an SMS send is not texted again (its slots were
  taken before the provider was called, and the code that went out still verifies); a
  binding whose transaction died with the worker left no row, and binds once.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from berater.db import db
from berater.models import Student
from standins.aliyun import RunningAliyunSms
from tests import factories, servers
from tests.helpers import InFlight

pytestmark = pytest.mark.backends

DROPPED_WITHIN = 1.0  # the killed request's client sees the connection go
REPLACED_WITHIN = 3.0  # the master has a new worker serving
SLOW_SMS = 2.5  # the stand-in's answer to a "timeout" fault (conftest), under the 3 s read
BLOCKED = 0.5  # a binding still in flight this long is waiting for the test's lock
PHONE_A, PHONE_B = "13800138001", "13800138002"


def sign_in(service: servers.Gunicorn, openid: str) -> str:
    answer = InFlight(service.port, "POST", f"/api/test/token/{openid}").done()
    assert answer.status == 200, answer.body
    return str(answer.body["data"]["token"])


def json_call(
    service: servers.Gunicorn, method: str, path: str, token: str | None = None, body: Any = None
) -> InFlight:
    answer = InFlight(service.port, method, path, token, body).done()
    assert answer.error is None, f"{method} {path}: {answer.error!r}"
    return answer


def last_code(aliyun: RunningAliyunSms, phone: str) -> str:
    texts = [m for m in aliyun.fake.sent if m.phone == phone]
    assert len(texts) == 1, f"{len(texts)} texts to {phone}"
    return str(texts[0].template_param["code"])


def wait_for(condition: Any, timeout: float, what: str, every: float = 0.02) -> float:
    """Poll `condition` every `every` seconds until true; the seconds it took."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, f"{what}: not within {timeout}s"
        time.sleep(every)
    return time.monotonic() - started


def kill(service: servers.Gunicorn, pid: int) -> tuple[float, list[int]]:
    """SIGKILL worker `pid`; when it was killed and the workers left besides it."""
    others = [p for p in service.workers() if p != pid]
    os.kill(pid, signal.SIGKILL)
    return time.monotonic(), others


def assert_replaced(service: servers.Gunicorn, killed: int, killed_at: float) -> None:
    """The master has two workers again, a new one among them, and both serve."""

    def replaced() -> bool:
        pids = service.workers()
        return len(pids) == 2 and killed not in pids

    wait_for(replaced, REPLACED_WITHIN, "the master replacing the killed worker")
    took = time.monotonic() - killed_at
    assert took < REPLACED_WITHIN, f"replaced after {took:.2f}s"
    served_by = serve_on_both_workers(service)
    assert sorted(served_by) == service.workers()


def serve_on_both_workers(service: servers.Gunicorn) -> list[int]:
    """GET /api/ping once per worker: each worker takes one connection at a time, so while a
    request held unfinished (no blank line yet) occupies one, the next goes to the other."""
    answers = service.on_each_worker("GET /api/ping HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    for status, body in answers.values():
        assert status == 200
        assert json.loads(body)["data"] == {"pong": True}
    return list(answers)


@pytest.fixture
def service(
    app: Flask, base_settings: dict[str, Any], tmp_path: Path
) -> Iterator[servers.Gunicorn]:
    """gunicorn with two workers on this run's database, store and stand-ins (the `app`
    fixture empties the data and the store afterwards)."""
    with servers.serving(
        base_settings, tmp_path / "gunicorn.log", **servers.ONE_CONNECTION_PER_WORKER
    ) as gunicorn:
        yield gunicorn


def test_an_sms_send_killed_mid_request_drops_only_itself_and_its_retry_sends_nothing(
    service: servers.Gunicorn, aliyun: RunningAliyunSms
) -> None:
    token_a, token_b = sign_in(service, "o_killed_send"), sign_in(service, "o_other_send")
    aliyun.fake.fail("timeout", times=2)  # both texts go out, each answered after SLOW_SMS

    send_a = InFlight(service.port, "POST", "/api/code", token_a, {"phone": PHONE_A})
    worker_a = service.holder(send_a.local)
    wait_for(lambda: aliyun.fake.calls == 1, 5, "send A reaching the provider")
    send_b = InFlight(service.port, "POST", "/api/code", token_b, {"phone": PHONE_B})
    worker_b = service.holder(send_b.local)
    assert worker_b != worker_a  # one connection per worker: B is on the other one
    wait_for(lambda: aliyun.fake.calls == 2, 5, "send B reaching the provider")

    killed_at, _ = kill(service, worker_a)

    send_a.done()
    assert send_a.error is not None, f"the killed worker answered {send_a.status}"
    assert send_a.ended - killed_at < DROPPED_WITHIN
    send_b.done()
    assert send_b.error is None and send_b.status == 200, (send_b.error, send_b.body)
    assert send_b.ended - send_b.started < SLOW_SMS + 1.5
    assert_replaced(service, worker_a, killed_at)

    # The retry of the killed send: its slots were taken before the provider was called.
    retry = json_call(service, "POST", "/api/code", token_a, {"phone": PHONE_A})
    assert retry.status == 429, retry.body
    assert int(retry.headers["Retry-After"]) >= 1
    assert aliyun.fake.calls == 2  # the retry never reached the provider
    # The text that went out before the kill carries a code that still verifies.
    verified = json_call(
        service, "POST", "/api/code/verify", token_a, {"code": last_code(aliyun, PHONE_A)}
    )
    assert verified.status == 200, verified.body
    checked = json_call(
        service, "POST", "/api/code/verify", token_b, {"code": last_code(aliyun, PHONE_B)}
    )
    assert checked.status == 200, checked.body
    assert sorted(m.phone for m in aliyun.fake.sent) == [PHONE_A, PHONE_B]  # one text each


@contextlib.contextmanager
def row_lock(app: Flask, id_card: str) -> Iterator[None]:
    """Hold the admission-list row (MariaDB: FOR UPDATE, which the binding's foreign-key check
    waits for) or the whole file (SQLite: a write transaction), until the block ends."""
    url = app.config["DATABASE_URL"]
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            yield
            conn.execute("ROLLBACK")
        finally:
            conn.close()
        return
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn, conn.begin() as transaction:
            conn.execute(
                sa.text("SELECT id_card FROM source_student WHERE id_card = :card FOR UPDATE"),
                {"card": id_card},
            )
            yield
            transaction.rollback()
    finally:
        engine.dispose()


def open_transactions(backend_servers: dict[str, servers.Server]) -> int:
    """InnoDB transactions in progress, read as root (0 on SQLite, where a dead process holds
    nothing). InnoDB refreshes this table only when it was not read for 0.1 s: poll slower."""
    mariadb = backend_servers.get("mariadb")
    if mariadb is None:
        return 0
    engine = sa.create_engine(mariadb.admin_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            query = "SELECT COUNT(*) FROM information_schema.INNODB_TRX"
            return int(conn.execute(sa.text(query)).scalar_one())
    finally:
        engine.dispose()


def students(app: Flask, openid: str) -> list[str]:
    with app.app_context():
        rows = db.session.scalars(sa.select(Student.id_card).where(Student.openid == openid))
        found = list(rows)
        db.session.remove()
        return found


def test_a_binding_killed_mid_write_leaves_no_row_and_the_retry_binds_once(
    service: servers.Gunicorn,
    app: Flask,
    aliyun: RunningAliyunSms,
    backend_servers: dict[str, servers.Server],
) -> None:
    with app.app_context():
        source = factories.source_student(stuid="202600077", admission_id="26320102000077")
        card = source.id_card
        db.session.commit()
        db.session.remove()
    token = sign_in(service, "o_killed_bind")
    assert json_call(service, "POST", "/api/code", token, {"phone": PHONE_A}).status == 200
    code = last_code(aliyun, PHONE_A)
    assert json_call(service, "POST", "/api/code/verify", token, {"code": code}).status == 200
    body = {"id_card": card, "id": "202600077"}

    with row_lock(app, card):
        bind = InFlight(service.port, "POST", "/api/student", token, body)
        worker = service.holder(bind.local)
        time.sleep(BLOCKED)
        assert bind.ended == 0.0, f"the binding did not wait for the lock: {bind.body}"
        if "mariadb" in backend_servers:
            assert open_transactions(backend_servers) == 2  # ours, and the binding's waiting
        # Meanwhile the other worker serves.
        assert json_call(service, "GET", "/api/token", token).status == 200
        killed_at, _ = kill(service, worker)
        bind.done()
        assert bind.error is not None, f"the killed worker answered {bind.status}"
        assert bind.ended - killed_at < DROPPED_WITHIN
    # The database ends the dead connection's transaction: nothing of it was committed.
    wait_for(
        lambda: open_transactions(backend_servers) == 0,
        5,
        "the killed binding's transaction ending",
        every=0.25,
    )
    assert students(app, "o_killed_bind") == []
    assert_replaced(service, worker, killed_at)

    # The retry binds, with the phone verified before (the dead binding never used it up).
    started = time.monotonic()
    retry = json_call(service, "POST", "/api/student", token, body)
    assert retry.status == 200, retry.body
    assert retry.body["data"]["student"] is True
    assert time.monotonic() - started < 2.0
    again = json_call(service, "POST", "/api/student", token, body)
    assert again.status == 409, again.body
    assert students(app, "o_killed_bind") == [card]
    assert len(aliyun.fake.sent) == 1  # no second text was needed
