"""Fixtures: the app on SQLite or MariaDB, the embedded or a server Redis, the stand-in WeChat.

`pytest` runs everything on SQLite and the embedded store; `pytest -m backends --db=mariadb
--store=redis` runs the tests marked `backends` again on real servers started here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from flask_migrate import upgrade
from werkzeug.serving import make_server

from berater import (
    create_app,
    models,  # noqa: F401 - registers the tables
)
from berater.db import Base, db, transaction
from berater.ext import embedded_redis
from berater.qna.corpus import load
from berater.qna.index import Index
from standins import aliyun as aliyun_standin
from standins import wechat as wechat_standin
from tests import servers


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--db", choices=["sqlite", "mariadb"], default="sqlite")
    parser.addoption("--store", choices=["embedded", "redis"], default="embedded")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `mariadb` belong to the run with `--db=mariadb`; leave them out of others."""
    if config.getoption("--db") == "mariadb":
        return
    kept = [item for item in items if "mariadb" not in item.keywords]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if "mariadb" in i.keywords])
        items[:] = kept


@pytest.fixture(scope="session")
def backend_servers(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, servers.Server]]:
    """The real MariaDB and Redis servers of this run (none on SQLite and the embedded store)."""
    started: dict[str, servers.Server] = {}
    base = tmp_path_factory.mktemp("servers")
    if request.config.getoption("--db") == "mariadb":
        started["mariadb"] = servers.start_mariadb(base / "mariadb")
    if request.config.getoption("--store") == "redis":
        started["redis"] = servers.start_redis(base / "redis")
    yield started
    for server in started.values():
        server.stop()


@pytest.fixture(scope="session")
def backend_urls(
    backend_servers: dict[str, servers.Server], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """DATABASE_URL, REDIS_URL and INSTANCE_PATH for this run."""
    base = tmp_path_factory.mktemp("instance")
    mariadb, redis_server = backend_servers.get("mariadb"), backend_servers.get("redis")
    return {
        "INSTANCE_PATH": str(base),
        "DATABASE_URL": mariadb.url if mariadb else f"sqlite:///{base / 'berater.sqlite3'}",
        "REDIS_URL": redis_server.url if redis_server else "",
    }


@pytest.fixture
def no_uploads_left(backend_urls: dict[str, str]) -> Iterator[None]:
    """The instance folder lives for the session: a test that uploads admission files
    starts and ends without any (`pytest.mark.usefixtures("no_uploads_left")`)."""
    folder = Path(backend_urls["INSTANCE_PATH"]) / "uploads"
    for path in folder.glob("*"):
        path.unlink()
    yield
    for path in folder.glob("*"):
        path.unlink()


@pytest.fixture(scope="session")
def wechat() -> Iterator[wechat_standin.RunningWeChat]:
    """The stand-in WeChat on a loopback port, for the whole session."""
    server = wechat_standin.running()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def aliyun() -> Iterator[aliyun_standin.RunningAliyunSms]:
    """The stand-in Aliyun SMS endpoint on a loopback port, for the whole session; its keys
    are random, so production-settings tests do not trip over development values."""
    import secrets

    fake = aliyun_standin.FakeAliyunSms(
        access_key="LTAI" + secrets.token_hex(10),
        access_secret=secrets.token_urlsafe(24),
        sign_name="Berater",
        template_code="SMS_000000001",
        timeout_sleep=2.5,
    )
    server = aliyun_standin.running(fake)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def base_settings(
    backend_urls: dict[str, str],
    wechat: wechat_standin.RunningWeChat,
    aliyun: aliyun_standin.RunningAliyunSms,
) -> dict[str, Any]:
    return {
        "BERATER_ENV": "testing",
        **backend_urls,
        "WECHAT_API_BASE": wechat.url,
        "WECHAT_OAUTH_BASE": wechat.url,
        "WECHAT_TIMEOUT": (1.0, 1.5),
        "SERVER_NAME": None,
        "SMS_BACKEND": "aliyun",
        "SMS_ENDPOINT": aliyun.url,
        "SMS_ACCESS_KEY": aliyun.fake.access_key,
        "SMS_ACCESS_SECRET": aliyun.fake.access_secret,
        "SMS_SIGN_NAME": "Berater",
        "SMS_TEMPLATE_CODE": "SMS_000000001",
        "SMS_TIMEOUT": (1.0, 1.5),
    }


@pytest.fixture(scope="session")
def _schema(base_settings: dict[str, Any]) -> None:
    """Run the migrations once per session, as `flask db upgrade` does."""
    app = create_app(base_settings)
    with app.app_context():
        db.drop_all()
        with db.engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
        upgrade()
        db.engine.dispose()


@pytest.fixture
def make_app(
    base_settings: dict[str, Any],
    _schema: None,
    wechat: wechat_standin.RunningWeChat,
    aliyun: aliyun_standin.RunningAliyunSms,
) -> Iterator[Callable[..., Flask]]:
    """Build an app with extra settings; data and store are emptied after the test."""
    apps: list[Flask] = []

    def build(**overrides: Any) -> Flask:
        app = create_app({**base_settings, **overrides})
        apps.append(app)
        return app

    wechat.fake.reset()
    aliyun.fake.reset()
    yield build
    for app in apps:
        # Background tasks end before the data they use is emptied and the stand-ins reset.
        app.extensions["berater.tasks"].shutdown(timeout=5)
    wechat.fake.reset()
    aliyun.fake.reset()
    for app in apps:
        with app.app_context():
            db.session.remove()
    if apps:
        _empty(apps[0])
        for app in apps:
            with app.app_context():
                db.engine.dispose()
            app.extensions["berater.store"].close()


def _empty(app: Flask) -> None:
    with app.app_context():
        with transaction() as session:
            for table in reversed(Base.metadata.sorted_tables):
                session.execute(table.delete())
        app.extensions["berater.store"].flushdb()


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


@pytest.fixture
def prod_app(make_app: Callable[..., Flask]) -> Flask:
    """The app under production settings (with real-looking secrets)."""
    from cryptography.fernet import Fernet

    return make_app(
        BERATER_ENV="production",
        ENABLE_TEST_TOKEN=False,
        SECRET_KEY="p" * 40,
        CRYPTO_KEYS=[Fernet.generate_key().decode()],
        WECHAT_APPID="wx_prod_appid_0001",
        WECHAT_SECRET="s" * 32,
        WECHAT_TOKEN="t" * 32,
        APP_TOKENS={},
        SERVICE_BASE_URL="https://localhost",  # the test client's host
    )


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask):
    return app.test_cli_runner()


@pytest.fixture
def ctx(app: Flask) -> Iterator[Flask]:
    """An application context for calling services directly."""
    with app.app_context():
        yield app


@pytest.fixture
def live_server(app: Flask) -> Iterator[str]:
    """The app served over real HTTP on a loopback port, in a thread; yields its base URL,
    which is the app's SERVICE_BASE_URL (its links point there; 127.0.0.1 is in the testing
    EXTRA_HOSTS, so the Host check lets it in)."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    base = f"http://127.0.0.1:{server.server_port}"
    app.config["SERVICE_BASE_URL"] = base
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield base
    server.shutdown()
    thread.join(timeout=5)


@pytest.fixture
def store_client(app: Flask) -> redis.Redis:
    """The raw Redis client the app uses (embedded or server)."""
    return app.extensions["berater.store"]


@pytest.fixture
def log_records() -> Iterator[list[Any]]:
    """Every record of the "berater" logger and of the root logger (where third-party
    libraries log), as logged, before the formatter's redaction: for "never logged" tests."""
    import logging

    captured: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            captured.append(record)

    handler = Keep(level=logging.DEBUG)
    loggers = [logging.getLogger("berater"), logging.getLogger()]
    for logger in loggers:
        logger.addHandler(handler)
    yield captured
    for logger in loggers:
        logger.removeHandler(handler)


def embedded_socket(app: Flask) -> Path:
    return embedded_redis.socket_path(app.instance_path)


class _SlowTestQna:
    """A Q&A backend marked slow (like BERT), answering TEST_QNA_ANSWER when it is set."""

    slow = True

    def answer(self, question: str) -> str | None:
        from flask import current_app

        return current_app.config.get("TEST_QNA_ANSWER")


@pytest.fixture
def slow_qna(monkeypatch: pytest.MonkeyPatch) -> str:
    """Register the slow test backend; pass QNA_BACKEND=<the returned name> to make_app."""
    from berater.qna import answers as qna

    monkeypatch.setitem(qna.BACKENDS, "slow-test", _SlowTestQna)
    return "slow-test"


# A small handbook in the text format: 9 paragraphs in 3 chapters, pages 3 to 41.
HANDBOOK = Path(__file__).parent / "qna" / "handbook.txt"


@pytest.fixture(scope="session")
def qna_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test handbook's index file, built once."""
    path = tmp_path_factory.mktemp("qna") / "qna-index.npz"
    Index.build(load(HANDBOOK), ["缓考", "绩点", "校园卡"]).save(path)
    return path
