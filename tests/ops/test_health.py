"""/healthz answers without asking anything; /readyz checks the database, the store and the
Q&A index, and names what failed within about a second.

Marked `backends`: ready on SQLite and the embedded store in `pytest`, on MariaDB and
redis-server in `pytest -m backends --db=mariadb --store=redis`. Outages are real: the
store's server is frozen or killed, MariaDB is frozen or stopped (tests/servers.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask

from tests import servers
from tests.helpers import StoreOutage

pytestmark = pytest.mark.backends

BUDGET = 1.5  # "within about a second": READY_DB_TIMEOUT and REDIS_SOCKET_TIMEOUT are 1 s


def _ready(app: Flask) -> tuple[int, dict, float]:
    started = time.monotonic()
    response = app.test_client().get("/readyz")
    return response.status_code, response.get_json(), time.monotonic() - started


def test_ready_when_the_database_the_store_and_the_index_are(
    make_app: Callable[..., Flask], qna_index: Path
) -> None:
    app = make_app(QNA_INDEX=str(qna_index))
    status, body, _ = _ready(app)
    assert status == 200, body
    assert body == {
        "code": 200,
        "error": "",
        "data": {"database": "ok", "store": "ok", "qna": "ok"},
    }
    assert app.test_client().get("/readyz").headers["Cache-Control"] == "no-store"


def test_alive_answers_without_the_database_or_the_store(
    app: Flask, make_app: Callable[..., Flask], qna_index: Path
) -> None:
    closed = servers.free_port()
    dead = make_app(
        DATABASE_URL=f"mysql+pymysql://nobody:x@127.0.0.1:{closed}/none",
        REDIS_URL=f"redis://127.0.0.1:{closed}/0",
        QNA_INDEX=str(qna_index),
    )
    alive = dead.test_client().get("/healthz")
    assert alive.status_code == 200
    assert alive.get_json() == {"code": 200, "error": "", "data": {"alive": True}}

    status, body, took = _ready(dead)
    assert status == 503
    assert body["error"] == "not ready: database, store"
    assert body["data"] == {"database": "unavailable", "store": "unavailable", "qna": "ok"}
    assert took < BUDGET


def test_without_its_index_qna_is_not_ready_unless_the_backend_needs_none(
    make_app: Callable[..., Flask], tmp_path: Path
) -> None:
    missing = str(tmp_path / "no-index.npz")
    status, body, _ = _ready(make_app(QNA_INDEX=missing))
    assert status == 503
    assert body["error"] == "not ready: qna"
    assert body["data"]["qna"].startswith("index not loaded")
    assert body["data"]["database"] == body["data"]["store"] == "ok"

    status, body, _ = _ready(make_app(QNA_INDEX=missing, QNA_BACKEND="placeholder"))
    assert status == 200, body
    assert body["data"]["qna"] == "not used"


def test_the_status_line_tells_the_truth_under_legacy_status_200(
    make_app: Callable[..., Flask], tmp_path: Path
) -> None:
    app = make_app(QNA_INDEX=str(tmp_path / "none.npz"), LEGACY_STATUS_200=True)
    response = app.test_client().get("/readyz")
    assert response.status_code == 503  # a probe reads the status line
    assert app.test_client().get("/api/ping").status_code == 200


def test_a_database_never_migrated_is_not_ready(
    app: Flask, make_app: Callable[..., Flask], tmp_path: Path, qna_index: Path
) -> None:
    fresh = make_app(
        DATABASE_URL=f"sqlite:///{tmp_path / 'empty.sqlite3'}", QNA_INDEX=str(qna_index)
    )
    status, body, _ = _ready(fresh)
    assert status == 503
    assert body["data"]["database"] == "not migrated: run `flask --app run db upgrade`"


@pytest.mark.parametrize("failure", ["hung", "refused"])
def test_a_store_outage_is_a_503_naming_the_store_within_a_second(
    make_app: Callable[..., Flask],
    backend_servers: dict[str, servers.Server],
    qna_index: Path,
    failure: str,
) -> None:
    app = make_app(QNA_INDEX=str(qna_index))
    assert _ready(app)[0] == 200
    outage = StoreOutage(app, backend_servers.get("redis"))
    outage.begin(failure)
    try:
        status, body, took = _ready(app)
        # The process still answers: a restart would not help.
        assert app.test_client().get("/healthz").status_code == 200
    finally:
        outage.end(failure)
    assert status == 503
    assert body["error"] == "not ready: store"
    assert body["data"] == {"database": "ok", "store": "unavailable", "qna": "ok"}
    assert took < BUDGET, f"{failure} store: the 503 took {took:.2f}s"
    assert _ready(app)[0] == 200  # the same app, once the store is back


@pytest.mark.mariadb
@pytest.mark.parametrize("failure", ["hung", "stopped"])
def test_a_database_outage_is_a_503_naming_the_database_within_a_second(
    make_app: Callable[..., Flask],
    backend_servers: dict[str, servers.Server],
    qna_index: Path,
    failure: str,
) -> None:
    app = make_app(QNA_INDEX=str(qna_index))
    assert _ready(app)[0] == 200
    server = backend_servers["mariadb"]
    server.pause() if failure == "hung" else server.stop()
    try:
        status, body, took = _ready(app)
    finally:
        server.resume() if failure == "hung" else server.start()
    assert status == 503
    assert body["error"] == "not ready: database"
    assert body["data"] == {"database": "unavailable", "store": "ok", "qna": "ok"}
    assert took < BUDGET, f"{failure} database: the 503 took {took:.2f}s"
    assert _ready(app)[0] == 200


def test_probes_are_not_logged_at_info_but_a_failure_is_a_warning(
    make_app: Callable[..., Flask], tmp_path: Path, qna_index: Path, log_records: list
) -> None:
    ready = make_app(QNA_INDEX=str(qna_index)).test_client()
    for _ in range(3):
        assert ready.get("/healthz").status_code == 200
        assert ready.get("/readyz").status_code == 200
    assert ready.get("/api/ping").status_code == 200
    unready = make_app(QNA_INDEX=str(tmp_path / "none.npz")).test_client()
    assert unready.get("/readyz").status_code == 503

    info = [r.getMessage() for r in log_records if r.levelno >= logging.INFO]
    assert any(m.startswith("GET /api/ping 200") for m in info)
    assert not any("/healthz" in m or "/readyz" in m for m in info)
    warnings = [r.getMessage() for r in log_records if r.levelno == logging.WARNING]
    assert any(m.startswith("not ready: qna index not loaded") for m in warnings)
