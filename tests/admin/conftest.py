"""Fixtures of the admin tests: browsers for the invitation pages, extra live servers."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
from flask import Flask
from werkzeug.serving import make_server

from berater.db import db
from tests import factories
from tests.admin.helpers import ADMIN, Browser, test_token


@pytest.fixture
def browser(wechat) -> Iterator[Callable[[str], Browser]]:
    """`browser(openid)`: a new browser whose person signs in at WeChat as `openid`."""
    opened: list[Browser] = []

    def new(openid: str) -> Browser:
        opened.append(Browser(openid, wechat.url))
        return opened[-1]

    yield new
    for each in opened:
        each.close()


@pytest.fixture
def serve() -> Iterator[Callable[[Flask], str]]:
    """`serve(app)`: `app` over real HTTP on a loopback port (for apps with other settings);
    the URL returned is the app's SERVICE_BASE_URL, as with `live_server`."""
    running = []

    def start(app: Flask) -> str:
        server = make_server("127.0.0.1", 0, app, threaded=True)
        base = f"http://127.0.0.1:{server.server_port}"
        app.config["SERVICE_BASE_URL"] = base
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        running.append((server, thread))
        return base

    yield start
    for server, thread in running:
        server.shutdown()
        thread.join(timeout=5)


@pytest.fixture
def grant() -> Callable[[Flask, str, str], None]:
    """`grant(app, subject, role)`: a role held in the database, as the CLI would grant it."""

    def give(app: Flask, subject: str, role: str) -> None:
        with app.app_context():
            factories.privilege(subject, role)
            db.session.commit()

    return give


@pytest.fixture
def admin_token(app: Flask, live_server: str, grant: Callable[[Flask, str, str], None]) -> str:
    """A token of `ADMIN`, a WeChat user holding `admin`, from the live server."""
    grant(app, ADMIN, "admin")
    return test_token(live_server, ADMIN)
