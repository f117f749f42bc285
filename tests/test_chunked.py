"""A body over the limit is a 413 however it is framed: chunked bodies are not cut and parsed.

Sent over real HTTP, so the server's own handling of `Transfer-Encoding: chunked` is used.
"""

from __future__ import annotations

import json

from tests.chat.helpers import signed_query, url
from tests.helpers import post_chunked


def test_a_chunked_json_body_over_the_limit_is_413(live_server: str, app) -> None:
    limit = app.config["MAX_CONTENT_LENGTH"]
    # Valid JSON up to the limit: cut there, the start would still parse as an object's prefix.
    body = json.dumps({"code": "x" * (2 * limit)}).encode()
    status, answer = post_chunked(live_server, "/api/token", body, "application/json")
    assert status == 413
    assert json.loads(answer) == {
        "code": 413,
        "error": "the request body is too large",
        "data": None,
    }


def test_a_small_chunked_json_body_is_read_whole(live_server: str) -> None:
    status, answer = post_chunked(
        live_server, "/api/token", json.dumps({"code": 12345}).encode(), "application/json"
    )
    # Read and validated: the field's type is wrong, nothing was cut.
    assert status == 400
    assert json.loads(answer)["data"]["fields"][0]["field"] == "code"


def test_a_chunked_webhook_body_over_its_limit_is_refused(live_server: str) -> None:
    body = b"<xml><Content><![CDATA[" + b"a" * (70 * 1024) + b"]]></Content></xml>"
    status, _ = post_chunked(live_server, url(signed_query()), body, "text/xml")
    assert status == 400
