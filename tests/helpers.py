"""Small helpers the API tests share."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import Flask
from sqlalchemy import event
from sqlalchemy.orm import Session

from berater.ext import embedded_redis
from tests.servers import Server

T = TypeVar("T")


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for a user token."""
    return {"Authorization": f"Bearer {token}"}


def token_for(client, openid: str) -> str:
    """A token for `openid` with the roles it holds, from the test-token route."""
    response = client.post(f"/api/test/token/{openid}")
    assert response.status_code == 200, response.get_json()
    return response.get_json()["data"]["token"]


@contextmanager
def commit_fails() -> Iterator[None]:
    """Every commit in the block fails before reaching the database, as a lost connection or a
    deadlock at COMMIT would: the transaction rolls back (a request answers 500). Savepoints
    are released as usual."""

    def refuse(session: Session) -> None:
        if session.get_nested_transaction() is None:  # not a savepoint's release
            raise RuntimeError("the commit failed")

    event.listen(Session, "before_commit", refuse)
    try:
        yield
    finally:
        event.remove(Session, "before_commit", refuse)


def in_thread(fn: Callable[[], T]) -> T:
    """`fn()` in another thread (with no app context of its own), waited for: a request by
    another worker thread, while this one holds its transaction open."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(fn).result(timeout=30)


def post_chunked(base: str, path: str, body: bytes, content_type: str) -> tuple[int, bytes]:
    """POST `body` in 4 KiB chunks, with no Content-Length."""
    parts = urlsplit(base)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 4096):
            yield body[start : start + 4096]

    try:
        connection.request(
            "POST",
            path,
            body=chunks(),
            headers={"Content-Type": content_type},
            encode_chunked=True,
        )
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


class StoreOutage:
    """Takes the app's store down in one of two ways, and brings it back.

    hung:    the server process is frozen (SIGSTOP): the kernel still accepts connections
             but nothing answers, so the client waits for its socket timeout.
    refused: the server process is gone: connecting fails at once.

    A redis-server is brought back by its owner (here `Server.restart()`, in
    production the service manager). The embedded server has no supervisor: it is started by
    the process that launches the app (gunicorn's master in `on_starting`, `python run.py`,
    `flask ...`, here the test process through `create_app`), always through
    `embedded_redis.ensure_running()`, on a socket path derived from the instance folder.
    So after a crash the recovery is that same call by the launcher; the running app keeps
    its client and, since the socket path is the same, its pool simply reconnects. That is
    what "recovers without a restart" means for the embedded store.
    """

    def __init__(self, app: Flask, server: Server | None) -> None:
        self.app = app
        self.server = server
        self.pid = 0 if server else self._embedded_pid()

    def _embedded_pid(self) -> int:
        pid = int((Path(self.app.instance_path) / "redis.pid").read_text().strip())
        served_by = self.app.extensions["berater.store"].info("server")["process_id"]
        assert pid == served_by, "redis.pid does not name the server behind the socket"
        return pid

    def begin(self, failure: str) -> None:
        if self.server is not None:
            self.server.pause() if failure == "hung" else self.server.stop()
            return
        if failure == "hung":
            os.kill(self.pid, signal.SIGSTOP)
            return
        os.kill(self.pid, signal.SIGKILL)  # a crash: no save, the socket file stays behind
        socket_path = embedded_redis.socket_path(self.app.instance_path)
        deadline = time.monotonic() + 5
        while embedded_redis.is_alive(socket_path, timeout=0.1):
            assert time.monotonic() < deadline, "the embedded Redis survived SIGKILL"
            time.sleep(0.02)

    def end(self, failure: str) -> None:
        if self.server is not None:
            self.server.resume() if failure == "hung" else self.server.restart()
        elif failure == "hung":
            os.kill(self.pid, signal.SIGCONT)
        else:
            embedded_redis.ensure_running(self.app.instance_path)


class InFlight:
    """One request over real HTTP on a connection of its own, sent from a thread: its client
    address (`local`, to find the worker holding it), then `done()` for the answer or error."""

    def __init__(
        self, port: int, method: str, path: str, token: str | None = None, body: Any = None
    ) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        self.conn.connect()
        assert self.conn.sock is not None
        self.local: tuple[str, int] = self.conn.sock.getsockname()
        self.status = 0
        self.body: dict[str, Any] = {}
        self.headers: dict[str, str] = {}
        self.error: BaseException | None = None
        self.started = time.monotonic()
        self.ended = 0.0
        headers = {"Content-Type": "application/json", "Connection": "close"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = json.dumps(body) if body is not None else None
        self._thread = threading.Thread(target=self._run, args=(method, path, headers, data))
        self._thread.start()

    def _run(self, method: str, path: str, headers: dict[str, str], data: str | None) -> None:
        try:
            self.conn.request(method, path, body=data, headers=headers)
            response = self.conn.getresponse()
            self.status = response.status
            self.headers = dict(response.getheaders())
            self.body = json.loads(response.read())
        except (OSError, http.client.HTTPException) as exc:
            self.error = exc
        finally:
            self.ended = time.monotonic()
            self.conn.close()

    def done(self, timeout: float = 20) -> InFlight:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "no answer and no error"
        return self


def run_bench(script: str, *options: str) -> str:
    """Run `bench/<script>` with `options` for a short while; its output, once it exited 0."""
    done = subprocess.run(
        [sys.executable, f"bench/{script}", *options],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert done.returncode == 0, f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done.stdout
