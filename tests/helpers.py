"""Small helpers the API tests share."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import urlsplit

from sqlalchemy import event
from sqlalchemy.orm import Session

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
