"""Small helpers the API tests share."""

from __future__ import annotations

import http.client
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar
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
